package opcua

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/simulators/line"
)

// node is one node of the line's namespace: a folder (Line1, Line1.M<k>, Line1.M<k>.Types,
// Line1.M<k>.Extra) or a variable.
type node struct {
	id       *ua.NodeID
	name     string // browse name, the last segment of the id
	parent   int    // index of the parent node, -1 for Line1 (whose parent is Objects, i=85)
	children []int
	v        int // index into space.vars; -1 for a folder
}

// varDef is one served variable: machine k's Variable def, or its extra value extra (def nil).
type varDef struct {
	k        int
	def      *Variable
	extra    int
	dataType uint32
	array    bool
	node     int
}

// value is one variable's served value and the time it last changed (its source timestamp).
type value struct {
	v       any
	variant *ua.Variant
	changed time.Time
}

// space is the line's address space (namespace NamespaceIndex) and its current values. The node
// table never changes after newSpace; mu guards cur, tick and removed.
type space struct {
	nodes []node
	byKey map[string]int // ua.NodeID.String() → index into nodes
	vars  []varDef
	step  time.Duration

	mu      sync.RWMutex
	cur     []value // replaced whole by update, never modified: readers keep it without the lock
	tick    uint64
	sampled bool
	removed map[int]bool // node indices removed by RemoveNode
}

// newSpace builds the node table for machines machines with extra extra values each.
func newSpace(machines, extra int, step time.Duration) *space {
	sp := &space{byKey: map[string]int{}, step: step, removed: map[int]bool{}}
	add := func(name, key string, parent, v int) int {
		i := len(sp.nodes)
		nid := ua.NewStringNodeID(NamespaceIndex, key)
		sp.nodes = append(sp.nodes, node{id: nid, name: name, parent: parent, v: v})
		sp.byKey[nid.String()] = i
		if parent >= 0 {
			sp.nodes[parent].children = append(sp.nodes[parent].children, i)
		}
		return i
	}
	defs := Variables()
	line1 := add("Line1", "Line1", -1, -1)
	for k := 1; k <= machines; k++ {
		mkey := "Line1.M" + strconv.Itoa(k)
		m := add("M"+strconv.Itoa(k), mkey, line1, -1)
		folders := map[string]int{}
		for j := range defs {
			d := &defs[j]
			parent, name := m, d.Name
			if dir, base, ok := strings.Cut(d.Name, "."); ok {
				f, seen := folders[dir]
				if !seen {
					f = add(dir, mkey+"."+dir, m, -1)
					folders[dir] = f
				}
				parent, name = f, base
			}
			sp.vars = append(sp.vars, varDef{k: k, def: d, dataType: d.DataType, array: d.Array})
			sp.vars[len(sp.vars)-1].node = add(name, mkey+"."+d.Name, parent, len(sp.vars)-1)
		}
		if extra > 0 {
			f := add("Extra", mkey+".Extra", m, -1)
			for i := range extra {
				sp.vars = append(sp.vars, varDef{k: k, extra: i, dataType: id.UInt16})
				sp.vars[len(sp.vars)-1].node = add(strconv.Itoa(i), mkey+".Extra."+strconv.Itoa(i), f, len(sp.vars)-1)
			}
		}
	}
	return sp
}

// lookup returns the index of the node with id, or -1 when there is none or it was removed.
func (sp *space) lookup(nid *ua.NodeID) int {
	if nid == nil || nid.Namespace() != NamespaceIndex || nid.Type() != ua.NodeIDTypeString {
		return -1
	}
	i, ok := sp.byKey[nid.String()]
	if !ok {
		return -1
	}
	sp.mu.RLock()
	gone := sp.removed[i]
	sp.mu.RUnlock()
	if gone {
		return -1
	}
	return i
}

// setRemoved removes (or restores) the node with the string id key ("ns=2;s=…" or the bare
// "Line1.M1.State"); it reports whether the node exists.
func (sp *space) setRemoved(key string, gone bool) bool {
	if !strings.HasPrefix(key, "ns=") {
		key = ua.NewStringNodeID(NamespaceIndex, key).String()
	}
	i, ok := sp.byKey[key]
	if !ok {
		return false
	}
	sp.mu.Lock()
	if gone {
		sp.removed[i] = true
	} else {
		delete(sp.removed, i)
	}
	sp.mu.Unlock()
	return true
}

// update computes every value at the line's current tick (ms are the machines' snapshots) and
// returns the indices of the variables whose value changed (all of them on the first call).
func (sp *space) update(now time.Time, tick uint64, ms []line.Machine) []int {
	sp.mu.RLock()
	prev, sampled := sp.cur, sp.sampled
	sp.mu.RUnlock()
	next := make([]value, len(sp.vars))
	var changed []int
	for i := range sp.vars {
		d := &sp.vars[i]
		var v any
		if d.def != nil {
			v = d.def.Value(d.k, ms[d.k-1], tick, sp.step)
		} else {
			v = ms[d.k-1].Extra(d.extra)
		}
		if sampled && same(prev[i].v, v) {
			next[i] = prev[i]
			continue
		}
		next[i] = value{v: v, variant: ua.MustVariant(v), changed: now}
		changed = append(changed, i)
	}
	sp.mu.Lock()
	sp.cur, sp.tick, sp.sampled = next, tick, true
	sp.mu.Unlock()
	return changed
}

// same reports whether two served values are equal; floats compare by bits, so NaN equals NaN.
func same(a, b any) bool {
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case []float64:
		y, ok := b.([]float64)
		return ok && slices.EqualFunc(x, y, func(p, q float64) bool { return math.Float64bits(p) == math.Float64bits(q) })
	case []int32:
		y, ok := b.([]int32)
		return ok && slices.Equal(x, y)
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return a == b
}

// values returns the current values (nil before the first update) and their tick. The slice
// must not be modified.
func (sp *space) values() ([]value, uint64) {
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	return sp.cur, sp.tick
}

// Hierarchical reference types this namespace uses, and their supertypes (for IncludeSubtypes).
const (
	refReferences      = id.References
	refHierarchical    = id.HierarchicalReferences
	refNonHierarchical = id.NonHierarchicalReferences
	refHasChild        = id.HasChild
	refAggregates      = id.Aggregates
	refOrganizes       = id.Organizes
	refHasComponent    = id.HasComponent
	refHasTypeDef      = id.HasTypeDefinition
)

// refMatches reports whether a reference of type ref passes a browse filter for type want.
func refMatches(want *ua.NodeID, sub bool, ref uint32) bool {
	if want == nil || (want.Namespace() == 0 && want.IntID() == 0) {
		return true
	}
	if want.Namespace() != 0 {
		return false
	}
	w := want.IntID()
	if w == ref {
		return true
	}
	if !sub {
		return false
	}
	switch w {
	case refReferences:
		return true
	case refHierarchical:
		return ref != refHasTypeDef
	case refNonHierarchical:
		return ref == refHasTypeDef
	case refHasChild, refAggregates:
		return ref == refHasComponent
	}
	return false
}

// refType is the type of the reference from a node's parent to it: Organizes for folders,
// HasComponent for variables.
func (n *node) refType() uint32 {
	if n.v < 0 {
		return refOrganizes
	}
	return refHasComponent
}

func (n *node) class() ua.NodeClass {
	if n.v < 0 {
		return ua.NodeClassObject
	}
	return ua.NodeClassVariable
}

func (n *node) typeDefinition() uint32 {
	if n.v < 0 {
		return id.FolderType
	}
	return id.BaseDataVariableType
}

// refTo describes node i as the target of a reference of type rt.
func (sp *space) refTo(i int, rt uint32, forward bool) *ua.ReferenceDescription {
	n := &sp.nodes[i]
	return &ua.ReferenceDescription{
		ReferenceTypeID: ua.NewNumericNodeID(0, rt),
		IsForward:       forward,
		NodeID:          ua.NewExpandedNodeID(n.id, "", 0),
		BrowseName:      &ua.QualifiedName{NamespaceIndex: NamespaceIndex, Name: n.name},
		DisplayName:     ua.NewLocalizedText(n.name),
		NodeClass:       n.class(),
		TypeDefinition:  ua.NewNumericExpandedNodeID(0, n.typeDefinition()),
	}
}

// browse returns every reference of the node bd names that passes bd's filters.
func (sp *space) browse(bd *ua.BrowseDescription) *ua.BrowseResult {
	i := sp.lookup(bd.NodeID)
	if i < 0 {
		return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
	}
	n := &sp.nodes[i]
	var refs []*ua.ReferenceDescription
	keep := func(rt uint32, class ua.NodeClass) bool {
		return refMatches(bd.ReferenceTypeID, bd.IncludeSubtypes, rt) &&
			(bd.NodeClassMask == 0 || bd.NodeClassMask&uint32(class) != 0)
	}
	fwd := bd.BrowseDirection == ua.BrowseDirectionForward || bd.BrowseDirection == ua.BrowseDirectionBoth
	inv := bd.BrowseDirection == ua.BrowseDirectionInverse || bd.BrowseDirection == ua.BrowseDirectionBoth
	if fwd && keep(refHasTypeDef, ua.NodeClassObjectType|ua.NodeClassVariableType) {
		class := ua.NodeClassObjectType
		if n.v >= 0 {
			class = ua.NodeClassVariableType
		}
		td := n.typeDefinition()
		name := "FolderType"
		if n.v >= 0 {
			name = "BaseDataVariableType"
		}
		refs = append(refs, &ua.ReferenceDescription{
			ReferenceTypeID: ua.NewNumericNodeID(0, refHasTypeDef),
			IsForward:       true,
			NodeID:          ua.NewNumericExpandedNodeID(0, td),
			BrowseName:      &ua.QualifiedName{Name: name},
			DisplayName:     ua.NewLocalizedText(name),
			NodeClass:       class,
			TypeDefinition:  ua.NewTwoByteExpandedNodeID(0),
		})
	}
	if fwd {
		sp.mu.RLock()
		for _, c := range n.children {
			if !sp.removed[c] && keep(sp.nodes[c].refType(), sp.nodes[c].class()) {
				refs = append(refs, sp.refTo(c, sp.nodes[c].refType(), true))
			}
		}
		sp.mu.RUnlock()
	}
	if inv && keep(n.refType(), ua.NodeClassObject) {
		if n.parent >= 0 {
			refs = append(refs, sp.refTo(n.parent, n.refType(), false))
		} else {
			refs = append(refs, &ua.ReferenceDescription{
				ReferenceTypeID: ua.NewNumericNodeID(0, refOrganizes),
				NodeID:          ua.NewNumericExpandedNodeID(0, id.ObjectsFolder),
				BrowseName:      &ua.QualifiedName{Name: "Objects"},
				DisplayName:     ua.NewLocalizedText("Objects"),
				NodeClass:       ua.NodeClassObject,
				TypeDefinition:  ua.NewNumericExpandedNodeID(0, id.FolderType),
			})
		}
	}
	return &ua.BrowseResult{StatusCode: ua.StatusGood, References: refs}
}

// attribute returns attribute attr of node i, with the timestamps ttr asks for; now is the
// server timestamp and minInterval the MinimumSamplingInterval in ms.
func (sp *space) attribute(i int, attr ua.AttributeID, ttr ua.TimestampsToReturn, now time.Time, minInterval float64) *ua.DataValue {
	n := &sp.nodes[i]
	var v any
	switch attr {
	case ua.AttributeIDNodeID:
		v = n.id
	case ua.AttributeIDNodeClass:
		v = int32(n.class())
	case ua.AttributeIDBrowseName:
		v = &ua.QualifiedName{NamespaceIndex: NamespaceIndex, Name: n.name}
	case ua.AttributeIDDisplayName:
		v = ua.NewLocalizedText(n.name)
	case ua.AttributeIDDescription:
		v = ua.NewLocalizedText(sp.description(i))
	case ua.AttributeIDWriteMask, ua.AttributeIDUserWriteMask:
		v = uint32(0)
	}
	if v == nil && n.v < 0 && attr == ua.AttributeIDEventNotifier {
		v = byte(0)
	}
	if v == nil && n.v >= 0 {
		d := &sp.vars[n.v]
		switch attr {
		case ua.AttributeIDValue:
			return sp.valueOf(n.v, ttr, now)
		case ua.AttributeIDDataType:
			v = ua.NewNumericNodeID(0, d.dataType)
		case ua.AttributeIDValueRank:
			v = int32(-1)
			if d.array {
				v = int32(1)
			}
		case ua.AttributeIDArrayDimensions:
			dims := []uint32{}
			if d.array {
				dims = []uint32{0} // unknown length until sampled
				if cur, _ := sp.values(); cur != nil {
					switch a := cur[n.v].v.(type) {
					case []float64:
						dims[0] = uint32(len(a))
					case []int32:
						dims[0] = uint32(len(a))
					}
				}
			}
			v = dims
		case ua.AttributeIDAccessLevel, ua.AttributeIDUserAccessLevel:
			v = byte(ua.AccessLevelTypeCurrentRead)
		case ua.AttributeIDAccessLevelEx:
			v = uint32(ua.AccessLevelTypeCurrentRead)
		case ua.AttributeIDMinimumSamplingInterval:
			v = minInterval
		case ua.AttributeIDHistorizing:
			v = false
		}
	}
	if v == nil {
		return badValue(ua.StatusBadAttributeIDInvalid, ttr, now)
	}
	dv := &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(v)}
	if ttr == ua.TimestampsToReturnServer || ttr == ua.TimestampsToReturnBoth {
		dv.EncodingMask |= ua.DataValueServerTimestamp
		dv.ServerTimestamp = now
	}
	return dv
}

// valueOf returns variable v's value as a DataValue.
func (sp *space) valueOf(v int, ttr ua.TimestampsToReturn, now time.Time) *ua.DataValue {
	cur, _ := sp.values()
	if cur == nil {
		// Not sampled yet: Run samples before it serves, so only a caller of the API sees this.
		return badValue(ua.StatusBadWaitingForInitialData, ttr, now)
	}
	dv := &ua.DataValue{EncodingMask: ua.DataValueValue, Value: cur[v].variant}
	if ttr == ua.TimestampsToReturnSource || ttr == ua.TimestampsToReturnBoth {
		dv.EncodingMask |= ua.DataValueSourceTimestamp
		dv.SourceTimestamp = cur[v].changed
	}
	if ttr == ua.TimestampsToReturnServer || ttr == ua.TimestampsToReturnBoth {
		dv.EncodingMask |= ua.DataValueServerTimestamp
		dv.ServerTimestamp = now
	}
	return dv
}

// description is the Description attribute of node i: what it is, for browsing people.
func (sp *space) description(i int) string {
	n := &sp.nodes[i]
	if n.v < 0 {
		return ""
	}
	d := &sp.vars[n.v]
	if d.def == nil {
		return fmt.Sprintf("extra value %d: (%d mod 256)<<8 | (tick mod 256)", d.extra, d.extra)
	}
	if d.def.Name == "State" {
		return "machine state: 1 running, 2 idle, 3 blocked, 4 down, 5 setup, 6 maintenance"
	}
	return ""
}

// badValue is a DataValue carrying only status and, when asked, the server timestamp.
func badValue(code ua.StatusCode, ttr ua.TimestampsToReturn, now time.Time) *ua.DataValue {
	dv := &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: code}
	if ttr == ua.TimestampsToReturnServer || ttr == ua.TimestampsToReturnBoth {
		dv.EncodingMask |= ua.DataValueServerTimestamp
		dv.ServerTimestamp = now
	}
	return dv
}
