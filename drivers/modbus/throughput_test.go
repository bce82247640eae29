package modbus

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/goburrow/modbus"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/simulators/simtest"
)

// threadCPU is the CPU time the calling OS thread has used (CLOCK_THREAD_CPUTIME_ID). With the
// goroutine locked to its thread, it is the polling loop's own CPU, not the in-process
// simulator's.
func threadCPU() time.Duration {
	const clockThreadCPUTime = 3
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

const wideRegs = 10000

// wideDevice is plcsim's machine 1 with its 10,000 extra holding registers (100..10099) as
// uint16 tags: 80 reads of 125 registers.
func wideDevice(addr string) drivers.Device {
	dev := tcpDevice(addr)
	dev.Timeout = 5 * time.Second
	for i := range wideRegs {
		dev.Tags = append(dev.Tags, tag(fmt.Sprintf("x%d", i), fmt.Sprintf("hr:%d", simtest.HoldingExtra+i), drivers.TypeUint16, ""))
	}
	return dev
}

// BenchmarkPoll_Sim10k polls 10,000 holding registers from plcsim over loopback TCP, one op per
// 10,000 registers, with the driver (planned reads, decode into samples, the batch handed to a
// sink) and, in the same run against the same simulator, with a bare goburrow loop (its own TCP
// handler, the same 80 reads, each register decoded into a []uint16). cpu-ns/op is the polling
// goroutine's own CPU time; compare the two with benchstat.
func BenchmarkPoll_Sim10k(b *testing.B) {
	sim := simtest.Start(b, simtest.Options{Manual: true, Line: simtest.LineConfig{ExtraValues: wideRegs}})
	measure := func(b *testing.B, op func()) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		op() // connect, warm up
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := threadCPU()
		for b.Loop() {
			op()
		}
		cpu := threadCPU() - cpu0
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(wideRegs*b.N)/b.Elapsed().Seconds(), "regs/s")
	}
	b.Run("client=driver", func(b *testing.B) {
		d, err := New([]drivers.Device{wideDevice(sim.ModbusAddr())}, Options{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s := d.newSession(b.Context(), &discardSink{})
		defer s.t.release()
		g := d.groups[0]
		if n := len(g.reads); n != wideRegs/125 {
			b.Fatalf("%d reads", n)
		}
		measure(b, func() {
			if !s.poll(g) || g.batch.Samples[wideRegs-1].Quality != drivers.QualityGood {
				b.Fatal("poll failed")
			}
		})
	})
	b.Run("client=goburrow", func(b *testing.B) {
		h := modbus.NewTCPClientHandler(sim.ModbusAddr())
		h.SlaveId, h.Timeout = 1, 5*time.Second
		defer h.Close()
		c := modbus.NewClient(h)
		vals := make([]uint16, wideRegs)
		measure(b, func() {
			for r := 0; r < wideRegs; r += 125 {
				data, err := c.ReadHoldingRegisters(uint16(simtest.HoldingExtra+r), 125)
				if err != nil || len(data) != 250 {
					b.Fatal(err)
				}
				for i := range 125 {
					vals[r+i] = binary.BigEndian.Uint16(data[2*i:])
				}
			}
		})
	})
}
