package modbus

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/floorlink/floorlink/drivers"
)

// mapFile is the part of a config file the planner needs (agent/config is out of this
// package's reach: DESIGN.md's import table).
type mapFile struct {
	Devices []struct {
		Name         string `yaml:"name"`
		Protocol     string `yaml:"protocol"`
		Address      string `yaml:"address"`
		UnitID       int    `yaml:"unit_id"`
		PollInterval string `yaml:"poll_interval"`
		MaxRegisters int    `yaml:"max_registers"`
		MaxGap       *int   `yaml:"max_gap"`
		AddressBase  int    `yaml:"address_base"`
		Tags         []struct {
			Name         string `yaml:"name"`
			Address      string `yaml:"address"`
			Type         string `yaml:"type"`
			ByteOrder    string `yaml:"byte_order"`
			Length       int    `yaml:"length"`
			PollInterval string `yaml:"poll_interval"`
		} `yaml:"tags"`
	} `yaml:"devices"`
}

func loadMap(t *testing.T, path string) []drivers.Device {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f mapFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	dur := func(s string) time.Duration {
		if s == "" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return d
	}
	var devs []drivers.Device
	for _, d := range f.Devices {
		if !strings.HasPrefix(d.Protocol, "modbus-") {
			continue // the shipped configs have OPC UA devices too
		}
		dev := drivers.Device{Name: d.Name, Protocol: d.Protocol, Address: d.Address, UnitID: uint8(d.UnitID),
			PollInterval: dur(d.PollInterval),
			Modbus:       drivers.ModbusOptions{MaxRegisters: d.MaxRegisters, AddressBase: d.AddressBase}}
		if d.MaxGap != nil {
			dev.Modbus.MaxGap = *d.MaxGap
			if *d.MaxGap == 0 {
				dev.Modbus.MaxGap = -1 // max_gap: 0 in a file is adjacent tags only, as the agent maps it
			}
		}
		for _, tg := range d.Tags {
			dev.Tags = append(dev.Tags, drivers.Tag{Name: tg.Name, Address: tg.Address, Type: drivers.DataType(tg.Type),
				ByteOrder: tg.ByteOrder, Length: tg.Length, PollInterval: dur(tg.PollInterval)})
		}
		devs = append(devs, dev)
	}
	return devs
}

// greedyPlanCost is what the planner this package had before the dynamic program costs: tags
// sorted by address join the current read while the hole before them and the read's size stay
// within the limits (Telegraf's max_insert, Neuron's tag_sort).
func greedyPlanCost(tags []tagSpec, size, gap int) cost {
	var c cost
	start, end := -1, -1
	for _, s := range tags {
		if start >= 0 && s.first()-end-1 <= gap && max(end, s.last())-start+1 <= size {
			end = max(end, s.last())
			continue
		}
		if start >= 0 {
			c.reads++
			c.regs += end - start + 1
		}
		start, end = s.first(), s.last()
	}
	c.reads++
	c.regs += end - start + 1
	return c
}

// optimum is the exhaustive optimum for one space's sorted tags: holes longer than gap cut them
// into independent segments (no read crosses one), each searched exhaustively.
func optimum(t *testing.T, tags []tagSpec, size, gap int) cost {
	var total cost
	for i := 0; i < len(tags); {
		j, reach := i+1, tags[i].last()
		for j < len(tags) && tags[j].first()-reach-1 <= gap {
			reach = max(reach, tags[j].last())
			j++
		}
		if j-i > 20 {
			t.Fatalf("a segment of %d tags is too large to search exhaustively", j-i)
		}
		c := exhaustive(tags[i:j], size, gap)
		total.reads += c.reads
		total.regs += c.regs
		i = j
	}
	return total
}

// TestPlan_Maps plans the shipped configs and the maps under testdata/maps and compares the
// requests per poll with the exhaustive optimum and with greedy packing. The table it logs is
// the one docs/benchmarks.md quotes: go test -run TestPlan_Maps -v ./drivers/modbus/.
func TestPlan_Maps(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	more, _ := filepath.Glob("testdata/maps/*.yaml")
	files = append(files, more...)
	if len(files) < 2 {
		t.Fatalf("maps: %v", files)
	}
	var lines []string
	for _, path := range files {
		devs := loadMap(t, path)
		for _, dev := range devs {
			d, err := New([]drivers.Device{dev}, Options{}, nil)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			c, _ := validateDevice(dev, &Options{MaxBits: DefaultMaxBits})
			for gi, g := range c.groups {
				var got, opt, greedy cost
				for _, r := range d.groups[gi].reads {
					got.reads++
					got.regs += int(r.count)
				}
				specs := slices.Clone(g.specs)
				slices.SortFunc(specs, func(a, b tagSpec) int {
					return cmp.Or(cmp.Compare(a.addr.space, b.addr.space), cmp.Compare(a.first(), b.first()), cmp.Compare(a.last(), b.last()))
				})
				for i := 0; i < len(specs); {
					j := i
					for j < len(specs) && specs[j].addr.space == specs[i].addr.space {
						j++
					}
					size, gap := c.lim.maxRegisters, c.lim.maxGap
					if !specs[i].addr.space.isRegister() {
						size, gap = c.lim.maxBits, 16*c.lim.maxGap
					}
					o, gr := optimum(t, specs[i:j], size, gap), greedyPlanCost(specs[i:j], size, gap)
					opt.reads, opt.regs = opt.reads+o.reads, opt.regs+o.regs
					greedy.reads, greedy.regs = greedy.reads+gr.reads, greedy.regs+gr.regs
					i = j
				}
				if got != opt {
					t.Errorf("%s %s every %v: plan %+v, optimum %+v", filepath.Base(path), dev.Name, g.interval, got, opt)
				}
				lines = append(lines, fmt.Sprintf("| %s | %s | %v | %d | %d reads, %d regs | %d reads, %d regs | %d reads, %d regs |",
					filepath.Base(path), dev.Name, g.interval, len(g.specs), got.reads, got.regs, opt.reads, opt.regs, greedy.reads, greedy.regs))
			}
		}
	}
	t.Logf("requests per poll\n| map | device | group | tags | planner | exhaustive optimum | greedy packing |\n|---|---|---|---|---|---|---|\n%s",
		strings.Join(lines, "\n"))
}
