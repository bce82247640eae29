package watch

import (
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether w is a terminal that Run can redraw in place: a character
// device, and not TERM=dumb (which cannot move the cursor).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&fs.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// TerminalSize returns a RunOptions.Size that reads w's window size before each frame, so
// that a resized window gets frames that fit; nil when w is not a file. A size it cannot read
// is DefaultWidth columns and no height limit.
func TerminalSize(w io.Writer) func() (width, height int) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	// Through SyscallConn, not Fd: Fd would put the file into blocking mode.
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	return func() (int, int) {
		var ws *unix.Winsize
		var werr error
		if err := rc.Control(func(fd uintptr) { ws, werr = unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ) }); err != nil || werr != nil || ws.Col == 0 {
			return DefaultWidth, 0
		}
		return int(ws.Col), int(ws.Row)
	}
}
