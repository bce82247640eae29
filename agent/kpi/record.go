package kpi

import (
	"math"
	"time"

	"github.com/floorlink/floorlink/agent/record"
)

// Field names of a KPI record, in the order the record holds them. docs/kpi.md describes each;
// the names are part of the MQTT contract: never rename one.
const (
	FieldWindow      = "window"       // string: "15m", "shift", "day"
	FieldShift       = "shift"        // string: the shift's name (shift windows only)
	FieldWindowStart = "window_start" // string: RFC 3339 UTC, ms; the record's Time is the end
	FieldWindowS     = "window_s"     // window length, s (real time: 23 h or 25 h on DST days)
	FieldPartial     = "partial"      // bool: the live "so far" record of Engine.Current

	FieldUnscheduledS = "unscheduled_s"  // outside shifts, non-working days
	FieldPlannedDownS = "planned_down_s" // breaks (ISO 22400 planned downtime)
	FieldPBTS         = "pbt_s"          // planned busy time (ISO 22400 PBT)
	FieldKnownPBTS    = "known_pbt_s"    // PBT with trustworthy state evidence
	FieldUnknownS     = "unknown_s"      // PBT without it
	FieldAPTS         = "apt_s"          // actual production time (ISO 22400 APT): run + micro-stops
	FieldRunS         = "run_s"          // running
	FieldMicroStopS   = "micro_stop_s"   // stops shorter than micro_stop that ended running
	FieldSetupS       = "setup_s"        // actual unit setup time (ISO 22400 AUST)
	FieldDownS        = "down_s"         // unplanned down time (ISO 22400 ADOT)
	FieldDelayS       = "delay_s"        // delay time (ISO 22400 ADET): idle + blocked
	FieldIdleS        = "idle_s"         //
	FieldBlockedS     = "blocked_s"      //
	FieldMaintenanceS = "maintenance_s"  // maintenance (ISO 22400 APMT)

	FieldProduced           = "produced"             // produced quantity (ISO 22400 PQ)
	FieldGood               = "good"                 // good quantity (GQ)
	FieldScrap              = "scrap"                // scrap quantity (SQ)
	FieldProducedPBT        = "produced_pbt"         // counted in PBT with known state: performance's parts
	FieldProducedUnknown    = "produced_unknown"     // counted across a gap
	FieldProducedOutsidePBT = "produced_outside_pbt" // counted during breaks or unscheduled time
	FieldProducedNoIdeal    = "produced_no_ideal"    // of produced_pbt, while no ideal cycle was known
	FieldIdealTimeS         = "ideal_time_s"         // Σ ideal cycle × produced_pbt, s
	FieldIdealCycleS        = "ideal_cycle_s"        // the ideal cycle at the window's end, s
	FieldStops              = "stops"                //
	FieldMicroStops         = "micro_stops"          //
	FieldFailures           = "failures"             // entries into down (ISO 22400 FE)
	FieldCounterResets      = "counter_resets"       //
	FieldCounterRollovers   = "counter_rollovers"    //

	FieldAvailability   = "availability"    // apt_s / known_pbt_s
	FieldCoverage       = "coverage"        // known_pbt_s / pbt_s
	FieldPerformance    = "performance"     // min(1, performance_raw)
	FieldPerformanceRaw = "performance_raw" // ideal_time_s / apt_s
	FieldQuality        = "quality"         // good / produced
	FieldOEE            = "oee"             // availability × performance × quality
	FieldThroughput     = "throughput_per_h"
	FieldScrapRatio     = "scrap_ratio" // scrap / produced
	FieldMTBF           = "mtbf_s"      // apt_s / failures
	FieldMTTR           = "mttr_s"      // down_s / failures
	FieldCycleMean      = "cycle_mean_s"
	FieldCycleLast      = "cycle_last_s"
)

// Reasons of the null KPI fields (quality bad): the denominator is zero.
const (
	reasonNoPBT      = "no_pbt"
	reasonNoKnownPBT = "no_known_pbt"
	reasonNoAPT      = "no_apt"
	reasonNoParts    = "no_parts"
	reasonNoFailures = "no_failures"
	reasonNoCycle    = "no_cycle"
	reasonNoIdeal    = "no_ideal_cycle"
	reasonNoCounters = "no_counters"
)

func secs(ns int64) float64 { return float64(ns) / 1e9 }

// build writes the record of window w of asset into dst.
func build(dst *record.Record, asset, spec string, w *window, partial bool) {
	x := &w.a
	dst.Reset()
	dst.Kind = record.KindKPI
	dst.Source = asset
	dst.Time = time.Unix(0, w.end).UTC()
	f := dst.Fields
	f = append(f, record.StringField(FieldWindow, spec))
	if w.shift != "" || spec == "shift" {
		f = append(f, record.StringField(FieldShift, w.shift))
	}
	f = append(f, record.StringField(FieldWindowStart, time.Unix(0, w.start).UTC().Format("2006-01-02T15:04:05.000Z07:00")))
	f = append(f, record.FloatField(FieldWindowS, secs(w.end-w.start)))
	f = append(f, record.BoolField(FieldPartial, partial))

	run, micro := x.st[StateRunning], x.microStop
	apt := run + micro
	idle, blocked := x.st[StateIdle], x.st[StateBlocked]
	down, setup, maint := x.st[StateDown], x.st[StateSetup], x.st[StateMaintenance]
	known := apt + setup + down + idle + blocked + maint
	f = append(f,
		record.FloatField(FieldUnscheduledS, secs(x.unscheduled)),
		record.FloatField(FieldPlannedDownS, secs(x.plannedDown)),
		record.FloatField(FieldPBTS, secs(x.pbt)),
		record.FloatField(FieldKnownPBTS, secs(known)),
		record.FloatField(FieldUnknownS, secs(x.unknown)),
		record.FloatField(FieldAPTS, secs(apt)),
		record.FloatField(FieldRunS, secs(run)),
		record.FloatField(FieldMicroStopS, secs(micro)),
		record.FloatField(FieldSetupS, secs(setup)),
		record.FloatField(FieldDownS, secs(down)),
		record.FloatField(FieldDelayS, secs(idle+blocked)),
		record.FloatField(FieldIdleS, secs(idle)),
		record.FloatField(FieldBlockedS, secs(blocked)),
		record.FloatField(FieldMaintenanceS, secs(maint)),
	)

	q := quantities(x)
	f = append(f,
		record.IntField(FieldProduced, q.produced),
		record.IntField(FieldGood, q.good),
		record.IntField(FieldScrap, q.scrap),
		record.IntField(FieldProducedPBT, q.pbt),
		record.IntField(FieldProducedUnknown, q.unknown),
		record.IntField(FieldProducedOutsidePBT, q.outside),
		record.IntField(FieldProducedNoIdeal, x.noIdeal),
		record.FloatField(FieldIdealTimeS, secs(x.idealTime)),
		nullable(FieldIdealCycleS, secs(x.idealEnd), x.idealEnd > 0, reasonNoIdeal),
		record.IntField(FieldStops, x.stops),
		record.IntField(FieldMicroStops, x.microStops),
		record.IntField(FieldFailures, x.failures),
		record.IntField(FieldCounterResets, x.resets),
		record.IntField(FieldCounterRollovers, x.rollovers),
	)

	k := compute(x, q, apt, known, down)
	counting := x.roles != 0
	ifCounting := func(reason string) string {
		if !counting {
			return reasonNoCounters
		}
		return reason
	}
	f = append(f,
		nullable(FieldAvailability, k.availability, known > 0, reasonNoKnownPBT),
		nullable(FieldCoverage, k.coverage, x.pbt > 0, reasonNoPBT),
		nullable(FieldPerformance, k.performance, k.perfOK, k.perfReason),
		nullable(FieldPerformanceRaw, k.performanceRaw, k.perfOK, k.perfReason),
		nullable(FieldQuality, k.quality, q.produced > 0, ifCounting(reasonNoParts)),
		nullable(FieldOEE, k.oee, k.oeeOK, k.oeeReason),
		nullable(FieldThroughput, k.throughput, known > 0 && counting, ifCounting(reasonNoKnownPBT)),
		nullable(FieldScrapRatio, k.scrapRatio, q.produced > 0, ifCounting(reasonNoParts)),
		nullable(FieldMTBF, k.mtbf, x.failures > 0, reasonNoFailures),
		nullable(FieldMTTR, k.mttr, x.failures > 0, reasonNoFailures),
		nullable(FieldCycleMean, k.cycleMean, q.pbt > 0, ifCounting(reasonNoParts)),
		nullable(FieldCycleLast, k.cycleLast, x.lastCycleParts > 0, ifCounting(reasonNoCycle)),
	)
	dst.Fields = f
}

func nullable(name string, v float64, ok bool, reason string) record.Field {
	if !ok {
		return record.NullField(name, record.Bad, reason)
	}
	return record.FloatField(name, v)
}

type qty struct {
	produced, good, scrap int64
	pbt, unknown, outside int64
}

// quantities derives produced, good and scrap from the counters the asset has: any two give
// the third.
func quantities(x *accum) qty {
	sum := func(r int) int64 { return x.cnt[r][catPBT] + x.cnt[r][catOutside] + x.cnt[r][catUnknown] }
	has := func(r int) bool { return x.roles&(1<<r) != 0 }
	total, good, reject := sum(roleTotal), sum(roleGood), sum(roleReject)
	var q qty
	switch {
	case has(roleTotal):
		q.produced, q.good, q.scrap = total, good, reject
		if !has(roleReject) {
			q.scrap = total - good
		}
		if !has(roleGood) {
			q.good = total - reject
		}
		q.pbt, q.unknown, q.outside = x.cnt[roleTotal][catPBT], x.cnt[roleTotal][catUnknown], x.cnt[roleTotal][catOutside]
	case has(roleGood) && has(roleReject):
		q.produced, q.good, q.scrap = good+reject, good, reject
		q.pbt = x.cnt[roleGood][catPBT] + x.cnt[roleReject][catPBT]
		q.unknown = x.cnt[roleGood][catUnknown] + x.cnt[roleReject][catUnknown]
		q.outside = x.cnt[roleGood][catOutside] + x.cnt[roleReject][catOutside]
	}
	return q
}

type kpis struct {
	availability, coverage, performance, performanceRaw, quality, oee float64
	perfOK, oeeOK                                                     bool
	perfReason, oeeReason                                             string
	throughput, scrapRatio, mtbf, mttr, cycleMean, cycleLast          float64
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }

// compute applies the formulas of docs/kpi.md, with its rules for zero denominators and its
// capping rule: performance above 1 is published raw and capped at 1 for OEE; quality and
// scrap ratio are clamped to [0, 1] (outside only when counters were read at different times).
func compute(x *accum, q qty, apt, known, down int64) kpis {
	var k kpis
	k.availability = ratio(apt, known)
	k.coverage = ratio(known, x.pbt)
	k.performanceRaw = ratio(x.idealTime, apt)
	k.performance = math.Min(1, k.performanceRaw)
	switch {
	case x.roles == 0:
		k.perfReason = reasonNoCounters
	case apt == 0:
		k.perfReason = reasonNoAPT
	case q.pbt > 0 && x.idealTime == 0:
		k.perfReason = reasonNoIdeal // parts, but never an ideal cycle to weigh them with
	default:
		k.perfOK = true
	}
	k.quality = clamp01(ratio(q.good, q.produced))
	k.scrapRatio = clamp01(ratio(q.scrap, q.produced))
	switch {
	case known == 0:
		k.oeeReason = reasonNoKnownPBT
	case apt == 0:
		k.oee, k.oeeOK = 0, true // availability 0: nothing else matters
	case !k.perfOK:
		k.oeeReason = k.perfReason
	case k.performance == 0:
		k.oee, k.oeeOK = 0, true // ran, made nothing
	case q.produced <= 0:
		k.oeeReason = reasonNoParts
	default:
		k.oee, k.oeeOK = k.availability*k.performance*k.quality, true
	}
	k.throughput = ratio(q.pbt, known) * 3600e9
	k.mtbf = secs(apt) / float64(max(x.failures, 1))
	k.mttr = secs(down) / float64(max(x.failures, 1))
	k.cycleMean = secs(apt) / float64(max(q.pbt, 1))
	k.cycleLast = secs(x.lastCycleNs) / float64(max(x.lastCycleParts, 1))
	return k
}
