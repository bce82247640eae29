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
// goroutine's own CPU time; compare the two with benchstat. client=both runs the two in turn
// within each op and reports their ratio directly.
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
	newDriver := func(b *testing.B) func() {
		d, err := New([]drivers.Device{wideDevice(sim.ModbusAddr())}, Options{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s := d.newSession(b.Context(), &discardSink{})
		b.Cleanup(s.t.release)
		g := d.groups[0]
		if n := len(g.reads); n != wideRegs/125 {
			b.Fatalf("%d reads", n)
		}
		return func() {
			if !s.poll(g) || g.batch.Samples[wideRegs-1].Quality != drivers.QualityGood {
				b.Fatal("poll failed")
			}
		}
	}
	newGoburrow := func(b *testing.B) func() {
		h := modbus.NewTCPClientHandler(sim.ModbusAddr())
		h.SlaveId, h.Timeout = 1, 5*time.Second
		b.Cleanup(func() { h.Close() })
		c := modbus.NewClient(h)
		vals := make([]uint16, wideRegs)
		return func() {
			for r := 0; r < wideRegs; r += 125 {
				data, err := c.ReadHoldingRegisters(uint16(simtest.HoldingExtra+r), 125)
				if err != nil || len(data) != 250 {
					b.Fatal(err)
				}
				for i := range 125 {
					vals[r+i] = binary.BigEndian.Uint16(data[2*i:])
				}
			}
		}
	}
	b.Run("client=driver", func(b *testing.B) { measure(b, newDriver(b)) })
	b.Run("client=goburrow", func(b *testing.B) { measure(b, newGoburrow(b)) })
	// Both in turn within every op, so that the load of a shared machine falls on both alike:
	// rate-ratio is the driver's rate over goburrow's, by CPU (the target: at least
	// 0.9), wall-ratio the same by elapsed time.
	b.Run("client=both", func(b *testing.B) {
		driver, bare := newDriver(b), newGoburrow(b)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		driver()
		bare()
		var cpuD, cpuG, wallD, wallG time.Duration
		for b.Loop() {
			t0, c0 := time.Now(), threadCPU()
			driver()
			t1, c1 := time.Now(), threadCPU()
			bare()
			t2, c2 := time.Now(), threadCPU()
			wallD, cpuD = wallD+t1.Sub(t0), cpuD+(c1-c0)
			wallG, cpuG = wallG+t2.Sub(t1), cpuG+(c2-c1)
		}
		b.ReportMetric(float64(cpuD.Nanoseconds())/float64(b.N), "driver-cpu-ns/op")
		b.ReportMetric(float64(cpuG.Nanoseconds())/float64(b.N), "goburrow-cpu-ns/op")
		b.ReportMetric(float64(cpuG)/float64(cpuD), "rate-ratio")
		b.ReportMetric(float64(wallG)/float64(wallD), "wall-ratio")
	})
}
