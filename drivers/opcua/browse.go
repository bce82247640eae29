package opcua

import (
	"context"
	"fmt"
	"strings"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/drivers"
)

// Browse limits: depth when none is given, and the most variables one Browse returns.
const (
	DefaultBrowseDepth = 10
	MaxBrowseNodes     = 100_000
)

// Node is one variable found by Browse.
type Node struct {
	// NodeID is the node id in the form a tag's address takes ("ns=2;s=Line1.M1.State").
	NodeID string
	// Path is the browse names from the start node down to this one, joined by "/", e.g.
	// "Line1/M1/State" (namespace indexes left out).
	Path string
	// DataType is the tag type that holds the value ("" when the driver cannot map it: then
	// the node cannot be a tag); UAType is the server's name of the DataType attribute
	// ("Double", "MessageSecurityMode", …); Array is true for a one-dimensional array.
	DataType drivers.DataType
	UAType   string
	Array    bool
	// AccessLevel is "read", "write", "read,write" or "none" (the current value's access).
	AccessLevel string
	// Value is the current value; Status the StatusCode's name when it is not good.
	Value  drivers.Value
	Status string
}

// Browse walks the address space of the server at endpoint from the node start ("" means the
// Objects folder, i=85) down to depth levels (≤ 0 means DefaultBrowseDepth), following
// hierarchical references into objects and folders, and returns its variables in browse order
// with their data type, access level and current value. opts are a device's connection
// options (security, user, PKI; the acquisition fields are ignored). ctx bounds the whole walk.
func Browse(ctx context.Context, endpoint string, opts drivers.OPCUAOptions, start string, depth int) ([]Node, error) {
	if start == "" {
		start = "i=85"
	}
	if depth <= 0 {
		depth = DefaultBrowseDepth
	}
	root, err := ParseNodeID(start)
	if err != nil {
		return nil, fmt.Errorf("browse %s: %w", endpoint, err)
	}
	opts.Mode, opts.SamplingInterval, opts.PublishingInterval, opts.QueueSize, opts.Timestamp = "", 0, 0, 0, ""
	dev := drivers.Device{Name: "browse", Protocol: Protocol, Address: endpoint, OPCUA: opts,
		Tags: []drivers.Tag{{Name: "browse", Address: start}}}
	d, err := New(dev, Options{}, nil)
	if err != nil {
		return nil, fmt.Errorf("browse %s: %w", endpoint, err)
	}
	cl, _, err := d.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("browse: %w", err)
	}
	defer closeClient(ctx, cl)

	type item struct {
		node  *ua.NodeID
		path  string
		level int
	}
	var vars []Node
	var varIDs []*ua.NodeID
	seen := map[string]bool{root.String(): true}
	queue := []item{{root, "", 0}}
	for len(queue) > 0 && len(vars) < MaxBrowseNodes {
		it := queue[0]
		queue = queue[1:]
		refs, err := browseAll(ctx, cl, it.node)
		if err != nil {
			return nil, fmt.Errorf("browse %s on %s: %w", it.node, endpoint, err)
		}
		for _, r := range refs {
			if r.NodeID == nil || r.NodeID.NodeID == nil || r.NodeID.HasServerIndex() || r.NodeID.HasNamespaceURI() {
				continue
			}
			nid := r.NodeID.NodeID
			key := nid.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			name := ""
			if r.BrowseName != nil {
				name = r.BrowseName.Name
			}
			path := name
			if it.path != "" {
				path = it.path + "/" + name
			}
			switch r.NodeClass {
			case ua.NodeClassVariable:
				vars = append(vars, Node{NodeID: key, Path: path})
				varIDs = append(varIDs, nid)
			case ua.NodeClassObject:
				if it.level+1 < depth {
					queue = append(queue, item{nid, path, it.level + 1})
				}
			}
		}
	}
	if err := describe(ctx, cl, vars, varIDs); err != nil {
		return nil, fmt.Errorf("browse %s: %w", endpoint, err)
	}
	return vars, nil
}

// browseAll returns the forward hierarchical references to objects and variables of n,
// following continuation points.
func browseAll(ctx context.Context, cl *opcua.Client, n *ua.NodeID) ([]*ua.ReferenceDescription, error) {
	res, err := cl.Browse(ctx, &ua.BrowseRequest{
		View:                          &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)},
		RequestedMaxReferencesPerNode: 1000,
		NodesToBrowse: []*ua.BrowseDescription{{NodeID: n, BrowseDirection: ua.BrowseDirectionForward,
			ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true,
			NodeClassMask: uint32(ua.NodeClassObject | ua.NodeClassVariable), ResultMask: uint32(ua.BrowseResultMaskAll)}},
	})
	if err != nil {
		return nil, err
	}
	if len(res.Results) != 1 {
		return nil, fmt.Errorf("%d browse results, want 1", len(res.Results))
	}
	r := res.Results[0]
	if r.StatusCode != ua.StatusOK {
		return nil, fmt.Errorf("%s", statusName(r.StatusCode))
	}
	refs := r.References
	for cp := r.ContinuationPoint; len(cp) > 0; {
		next, err := cl.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{cp}})
		if err != nil {
			return nil, err
		}
		if len(next.Results) != 1 {
			break
		}
		refs = append(refs, next.Results[0].References...)
		cp = next.Results[0].ContinuationPoint
	}
	return refs, nil
}

// describe reads the data type, value rank, access level and value of vars, in batches, and
// the names of data types that are not built in.
func describe(ctx context.Context, cl *opcua.Client, vars []Node, ids []*ua.NodeID) error {
	const per = 200 // nodes per Read: 800 attributes, well under any request limit
	attrs := []ua.AttributeID{ua.AttributeIDDataType, ua.AttributeIDValueRank, ua.AttributeIDAccessLevel, ua.AttributeIDValue}
	custom := map[string][]int{} // data type node id → vars of that type
	var customIDs []*ua.NodeID
	for start := 0; start < len(ids); start += per {
		end := min(start+per, len(ids))
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
		for _, n := range ids[start:end] {
			for _, a := range attrs {
				req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: n, AttributeID: a})
			}
		}
		res, err := cl.Read(ctx, req)
		if err != nil {
			return err
		}
		if len(res.Results) != len(req.NodesToRead) {
			return fmt.Errorf("read attributes: %d results for %d", len(res.Results), len(req.NodesToRead))
		}
		for i := start; i < end; i++ {
			r := res.Results[(i-start)*len(attrs):]
			v := &vars[i]
			if dt, ok := variantValue(r[0]).(*ua.NodeID); ok {
				if b, ok := builtinTypes[dt.IntID()]; ok && dt.Namespace() == 0 {
					v.UAType, v.DataType = b.name, b.typ
				} else {
					key := dt.String()
					if custom[key] == nil {
						customIDs = append(customIDs, dt)
					}
					custom[key] = append(custom[key], i)
				}
			}
			if rank, ok := variantValue(r[1]).(int32); ok {
				v.Array = rank >= 1
			}
			if al, ok := variantValue(r[2]).(uint8); ok {
				v.AccessLevel = accessLevel(al)
			}
			q, reason := quality(r[3].Status)
			if q != drivers.QualityGood {
				v.Status = reason
			}
			if val, typ, _, ok := decode(r[3].Value); ok && q != drivers.QualityBad {
				v.Value = val
				if v.DataType == "" {
					v.DataType = typ // an enumeration or other subtype: the type of its value
				}
			}
		}
	}
	// The names of data types that are not built in (enumerations, structures).
	for start := 0; start < len(customIDs); start += per {
		end := min(start+per, len(customIDs))
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
		for _, n := range customIDs[start:end] {
			req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDBrowseName})
		}
		res, err := cl.Read(ctx, req)
		if err != nil {
			return err
		}
		for i, dv := range res.Results {
			if qn, ok := variantValue(dv).(*ua.QualifiedName); ok && i < end-start {
				for _, k := range custom[customIDs[start+i].String()] {
					vars[k].UAType = qn.Name
				}
			}
		}
	}
	return nil
}

func variantValue(dv *ua.DataValue) any {
	if dv == nil || dv.Value == nil || dv.Status != ua.StatusOK {
		return nil
	}
	return dv.Value.Value()
}

func accessLevel(al uint8) string {
	var parts []string
	if al&1 != 0 {
		parts = append(parts, "read")
	}
	if al&2 != 0 {
		parts = append(parts, "write")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}
