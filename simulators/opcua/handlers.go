package opcua

import (
	"encoding/binary"
	"math"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
)

// register installs the handlers before gopcua's Start (RegisterHandler keeps the first one
// given for a service). Every handler runs under guard; those gopcua implements are either
// replaced (Read, Write, Browse, BrowseNext, GetEndpoints, FindServers, and the subscription and
// monitored item services) or answered BadServiceUnsupported. The session services stay
// gopcua's: they are not reachable from outside its package.
func (b *backend) register() {
	srv := b.srv
	reg := func(typeID uint16, name string, h server.Handler) { srv.RegisterHandler(typeID, b.guard(name, h)) }
	reg(id.ReadRequest_Encoding_DefaultBinary, "read", b.handleRead)
	reg(id.WriteRequest_Encoding_DefaultBinary, "write", b.handleWrite)
	reg(id.BrowseRequest_Encoding_DefaultBinary, "browse", b.handleBrowse)
	reg(id.BrowseNextRequest_Encoding_DefaultBinary, "browse next", b.handleBrowseNext)
	reg(id.GetEndpointsRequest_Encoding_DefaultBinary, "get endpoints", b.handleGetEndpoints)
	reg(id.FindServersRequest_Encoding_DefaultBinary, "find servers", b.handleFindServers)
	// The subscription services are ours (subs.go): gopcua's reuse subscription ids.
	ss := b.subs
	reg(id.CreateSubscriptionRequest_Encoding_DefaultBinary, "create subscription", ss.handleCreateSubscription)
	reg(id.DeleteSubscriptionsRequest_Encoding_DefaultBinary, "delete subscriptions", ss.handleDeleteSubscriptions)
	reg(id.PublishRequest_Encoding_DefaultBinary, "publish", ss.handlePublish)
	reg(id.CreateMonitoredItemsRequest_Encoding_DefaultBinary, "create monitored items", ss.handleCreateMonitoredItems)
	reg(id.DeleteMonitoredItemsRequest_Encoding_DefaultBinary, "delete monitored items", ss.handleDeleteMonitoredItems)
	reg(id.SetMonitoringModeRequest_Encoding_DefaultBinary, "set monitoring mode", ss.handleSetMonitoringMode)
	// Everything else gopcua answers BadServiceUnsupported anyway; answering here keeps its
	// handlers (and their unchecked request fields) out of the way.
	for _, t := range []uint16{
		id.FindServersOnNetworkRequest_Encoding_DefaultBinary, id.RegisterServerRequest_Encoding_DefaultBinary,
		id.RegisterServer2Request_Encoding_DefaultBinary, id.CancelRequest_Encoding_DefaultBinary,
		id.AddNodesRequest_Encoding_DefaultBinary, id.AddReferencesRequest_Encoding_DefaultBinary,
		id.DeleteNodesRequest_Encoding_DefaultBinary, id.DeleteReferencesRequest_Encoding_DefaultBinary,
		id.TranslateBrowsePathsToNodeIDsRequest_Encoding_DefaultBinary, id.RegisterNodesRequest_Encoding_DefaultBinary,
		id.UnregisterNodesRequest_Encoding_DefaultBinary, id.QueryFirstRequest_Encoding_DefaultBinary,
		id.QueryNextRequest_Encoding_DefaultBinary, id.HistoryReadRequest_Encoding_DefaultBinary,
		id.HistoryUpdateRequest_Encoding_DefaultBinary, id.CallRequest_Encoding_DefaultBinary,
		id.ModifySubscriptionRequest_Encoding_DefaultBinary, id.SetPublishingModeRequest_Encoding_DefaultBinary,
		id.RepublishRequest_Encoding_DefaultBinary, id.TransferSubscriptionsRequest_Encoding_DefaultBinary,
		id.ModifyMonitoredItemsRequest_Encoding_DefaultBinary, id.SetTriggeringRequest_Encoding_DefaultBinary,
	} {
		reg(t, "unsupported", func(*uasc.SecureChannel, ua.Request, uint32) (ua.Response, error) {
			return nil, ua.StatusBadServiceUnsupported
		})
	}
}

// guard runs h with the checks every request gets: a request header, no panic escaping (gopcua
// runs handlers without recover, so one panic would end the process), and a response under
// ResponseBudget (gopcua would send a larger one as a single chunk its own client rejects).
func (b *backend) guard(name string, h server.Handler) server.Handler {
	return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (resp ua.Response, err error) {
		defer func() {
			if p := recover(); p != nil {
				b.s.log.Warn("opcua request panicked", "service", name, "panic", p)
				resp, err = nil, ua.StatusBadInternalError
			}
		}()
		if r == nil || r.Header() == nil || r.Header().AuthenticationToken == nil {
			return nil, ua.StatusBadRequestHeaderInvalid
		}
		resp, err = h(sc, r, reqID)
		if err != nil || resp == nil {
			return resp, err
		}
		if buf, eerr := ua.Encode(resp); eerr != nil || len(buf) > ResponseBudget {
			b.s.log.Warn("opcua response refused", "service", name, "bytes", len(buf), "err", eerr)
			return nil, ua.StatusBadResponseTooLarge
		}
		return resp, nil
	}
}

func header(r ua.Request, code ua.StatusCode) *ua.ResponseHeader {
	return &ua.ResponseHeader{
		Timestamp:          time.Now(),
		RequestHandle:      r.Header().RequestHandle,
		ServiceResult:      code,
		ServiceDiagnostics: &ua.DiagnosticInfo{},
		StringTable:        []string{},
		AdditionalHeader:   ua.NewExtensionObject(nil),
	}
}

// limits are the ns=0 variables whose gopcua values are missing or wrong: OperationLimits
// (gopcua serves only MaxNodesPerRead, as 32) and the server status a client watches.
var limits = map[uint32]uint32{
	id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead:          MaxNodesPerRead,
	id.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite:         MaxNodesPerWrite,
	id.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse:        MaxNodesPerBrowse,
	id.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall: MaxMonitoredItemsPerCall,
}

// read returns attribute attr of node nid, whatever its namespace.
func (b *backend) read(nid *ua.NodeID, attr ua.AttributeID, ttr ua.TimestampsToReturn, now time.Time) *ua.DataValue {
	if nid == nil {
		return badValue(ua.StatusBadNodeIDInvalid, ttr, now)
	}
	switch nid.Namespace() {
	case NamespaceIndex:
		i := b.s.sp.lookup(nid)
		if i < 0 {
			return badValue(ua.StatusBadNodeIDUnknown, ttr, now)
		}
		return b.s.sp.attribute(i, attr, ttr, now, float64(b.s.interval)/float64(time.Millisecond))
	case 0:
	default:
		return badValue(ua.StatusBadNodeIDUnknown, ttr, now)
	}
	if nid.Type() == ua.NodeIDTypeNumeric || nid.Type() == ua.NodeIDTypeTwoByte || nid.Type() == ua.NodeIDTypeFourByte {
		if dv := b.readStatus(nid.IntID(), attr, ttr, now); dv != nil {
			return dv
		}
	}
	ns0, err := b.srv.Namespace(0)
	if err != nil {
		return badValue(ua.StatusBadNodeIDUnknown, ttr, now)
	}
	dv := ns0.Attribute(nid, attr)
	if dv == nil {
		return badValue(ua.StatusBadAttributeIDInvalid, ttr, now)
	}
	out := *dv
	if attr == ua.AttributeIDDataType && out.Value != nil {
		// gopcua stores DataType as an ExpandedNodeId; the attribute is a NodeId.
		if e, ok := out.Value.Value().(*ua.ExpandedNodeID); ok && e.NodeID != nil {
			out.Value = ua.MustVariant(e.NodeID)
		}
	}
	out.EncodingMask &^= ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp
	if attr == ua.AttributeIDValue && out.Status == ua.StatusOK && (ttr == ua.TimestampsToReturnSource || ttr == ua.TimestampsToReturnBoth) {
		out.EncodingMask |= ua.DataValueSourceTimestamp
		if out.SourceTimestamp.IsZero() {
			out.SourceTimestamp = now
		}
	}
	if ttr == ua.TimestampsToReturnServer || ttr == ua.TimestampsToReturnBoth {
		out.EncodingMask |= ua.DataValueServerTimestamp
		out.ServerTimestamp = now
	}
	return &out
}

// readStatus answers the ns=0 variables served here rather than by gopcua (limits, CurrentTime,
// State), or returns nil.
func (b *backend) readStatus(n uint32, attr ua.AttributeID, ttr ua.TimestampsToReturn, now time.Time) *ua.DataValue {
	var v any
	var dt uint32
	switch n {
	case id.Server_ServerStatus_CurrentTime:
		v, dt = now, id.UtcTime
	case id.Server_ServerStatus_State:
		v, dt = int32(ua.ServerStateRunning), id.ServerState
	default:
		l, ok := limits[n]
		if !ok {
			return nil
		}
		v, dt = l, id.UInt32
	}
	var out any
	switch attr {
	case ua.AttributeIDValue:
		dv := &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(v)}
		if ttr == ua.TimestampsToReturnSource || ttr == ua.TimestampsToReturnBoth {
			dv.EncodingMask |= ua.DataValueSourceTimestamp
			dv.SourceTimestamp = now
		}
		if ttr == ua.TimestampsToReturnServer || ttr == ua.TimestampsToReturnBoth {
			dv.EncodingMask |= ua.DataValueServerTimestamp
			dv.ServerTimestamp = now
		}
		return dv
	case ua.AttributeIDDataType:
		out = ua.NewNumericNodeID(0, dt)
	case ua.AttributeIDValueRank:
		out = int32(-1)
	case ua.AttributeIDAccessLevel, ua.AttributeIDUserAccessLevel:
		out = byte(ua.AccessLevelTypeCurrentRead)
	default:
		return nil
	}
	dv := &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(out)}
	if ttr == ua.TimestampsToReturnServer || ttr == ua.TimestampsToReturnBoth {
		dv.EncodingMask |= ua.DataValueServerTimestamp
		dv.ServerTimestamp = now
	}
	return dv
}

func (b *backend) handleRead(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.ReadRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case len(req.NodesToRead) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(req.NodesToRead) > MaxNodesPerRead:
		return nil, ua.StatusBadTooManyOperations
	case req.TimestampsToReturn > ua.TimestampsToReturnNeither:
		return nil, ua.StatusBadTimestampsToReturnInvalid
	case req.MaxAge < 0 || math.IsNaN(req.MaxAge):
		return nil, ua.StatusBadMaxAgeInvalid
	}
	now := time.Now()
	res := make([]*ua.DataValue, len(req.NodesToRead))
	for i, rv := range req.NodesToRead {
		if rv == nil {
			res[i] = badValue(ua.StatusBadNodeIDInvalid, req.TimestampsToReturn, now)
			continue
		}
		res[i] = b.read(rv.NodeID, rv.AttributeID, req.TimestampsToReturn, now)
	}
	return &ua.ReadResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// handleWrite refuses every write: the line's values are the simulation's, and gopcua's Write
// crashes on an unknown namespace and replaces computed values for good.
func (b *backend) handleWrite(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.WriteRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case len(req.NodesToWrite) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(req.NodesToWrite) > MaxNodesPerWrite:
		return nil, ua.StatusBadTooManyOperations
	}
	now := time.Now()
	res := make([]ua.StatusCode, len(req.NodesToWrite))
	for i, w := range req.NodesToWrite {
		res[i] = ua.StatusBadNotWritable
		if w == nil {
			res[i] = ua.StatusBadNodeIDInvalid
		} else if dv := b.read(w.NodeID, ua.AttributeIDNodeClass, ua.TimestampsToReturnNeither, now); dv.Status == ua.StatusBadNodeIDUnknown || dv.Status == ua.StatusBadNodeIDInvalid {
			res[i] = dv.Status
		}
	}
	return &ua.WriteResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func (b *backend) browseOne(bd *ua.BrowseDescription) (res *ua.BrowseResult) {
	if bd == nil || bd.NodeID == nil {
		return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDInvalid}
	}
	if bd.BrowseDirection > ua.BrowseDirectionBoth {
		return &ua.BrowseResult{StatusCode: ua.StatusBadBrowseDirectionInvalid}
	}
	switch bd.NodeID.Namespace() {
	case NamespaceIndex:
		return b.s.sp.browse(bd)
	case 0:
		defer func() {
			if p := recover(); p != nil {
				res = &ua.BrowseResult{StatusCode: ua.StatusBadInternalError}
			}
		}()
		if bd.ReferenceTypeID == nil {
			bd.ReferenceTypeID = ua.NewTwoByteNodeID(0)
		}
		ns0, err := b.srv.Namespace(0)
		if err != nil {
			return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
		}
		return ns0.Browse(bd)
	}
	return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
}

// page cuts res to perNode references, keeping the rest behind a continuation point (gopcua's
// Browse ignores RequestedMaxReferencesPerNode and has no BrowseNext).
func (b *backend) page(res *ua.BrowseResult, perNode int) {
	if res.StatusCode != ua.StatusOK || len(res.References) <= perNode {
		return
	}
	rest := res.References[perNode:]
	res.References = res.References[:perNode]
	b.cpMu.Lock()
	defer b.cpMu.Unlock()
	b.cpSeq++
	key := make([]byte, 8)
	binary.BigEndian.PutUint64(key, b.cpSeq)
	b.cps[string(key)] = &continuation{refs: rest, perNode: perNode}
	b.order = append(b.order, string(key))
	if len(b.order) > 1000 {
		// Clients that never release their continuation points cost memory; drop the oldest.
		delete(b.cps, b.order[0])
		b.order = b.order[1:]
	}
	res.ContinuationPoint = key
}

func perNode(requested uint32, nodes int) int {
	n := max(1, BrowseBudget/max(nodes, 1))
	if requested > 0 && int(requested) < n {
		n = int(requested)
	}
	return n
}

func (b *backend) handleBrowse(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.BrowseRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case len(req.NodesToBrowse) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(req.NodesToBrowse) > MaxNodesPerBrowse:
		return nil, ua.StatusBadTooManyOperations
	}
	n := perNode(req.RequestedMaxReferencesPerNode, len(req.NodesToBrowse))
	res := make([]*ua.BrowseResult, len(req.NodesToBrowse))
	for i, bd := range req.NodesToBrowse {
		res[i] = b.browseOne(bd)
		b.page(res[i], n)
	}
	return &ua.BrowseResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

func (b *backend) handleBrowseNext(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.BrowseNextRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case len(req.ContinuationPoints) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(req.ContinuationPoints) > MaxNodesPerBrowse:
		return nil, ua.StatusBadTooManyOperations
	}
	res := make([]*ua.BrowseResult, len(req.ContinuationPoints))
	for i, key := range req.ContinuationPoints {
		b.cpMu.Lock()
		cp := b.cps[string(key)]
		delete(b.cps, string(key))
		b.cpMu.Unlock()
		switch {
		case cp == nil:
			res[i] = &ua.BrowseResult{StatusCode: ua.StatusBadContinuationPointInvalid}
		case req.ReleaseContinuationPoints:
			res[i] = &ua.BrowseResult{StatusCode: ua.StatusOK}
		default:
			res[i] = &ua.BrowseResult{StatusCode: ua.StatusOK, References: cp.refs}
			b.page(res[i], min(cp.perNode, perNode(0, len(req.ContinuationPoints))))
		}
	}
	return &ua.BrowseNextResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// application describes the server in GetEndpoints and FindServers.
func (b *backend) application() *ua.ApplicationDescription {
	return &ua.ApplicationDescription{
		ApplicationURI:  ServerURI,
		ProductURI:      ServerURI,
		ApplicationName: ua.NewLocalizedText("plcsim"),
		ApplicationType: ua.ApplicationTypeServer,
		DiscoveryURLs:   b.urls,
	}
}

func (b *backend) endpoint(url string) *ua.EndpointDescription {
	return &ua.EndpointDescription{
		EndpointURL:       url,
		Server:            b.application(),
		SecurityMode:      ua.MessageSecurityModeNone,
		SecurityPolicyURI: ua.SecurityPolicyURINone,
		UserIdentityTokens: []*ua.UserTokenPolicy{{
			PolicyID: "anonymous", TokenType: ua.UserTokenTypeAnonymous, SecurityPolicyURI: ua.SecurityPolicyURINone,
		}},
		TransportProfileURI: "http://opcfoundation.org/UA-Profile/Transport/uatcp-uasc-uabinary",
	}
}

// handleGetEndpoints answers with the endpoint of the URL the client asked for, matched without
// case and trailing slash; a URL of another host name on this port is answered with itself (a
// client reaching us by a name we did not know of still finds its endpoint); anything else gets
// every endpoint, as the spec asks.
func (b *backend) handleGetEndpoints(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.GetEndpointsRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	want := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(req.EndpointURL)), "/")
	var eps []*ua.EndpointDescription
	for _, u := range b.urls {
		if strings.ToLower(u) == want {
			eps = append(eps, b.endpoint(u))
		}
	}
	if len(eps) == 0 && len(b.urls) > 0 {
		_, port, _ := strings.Cut(strings.TrimPrefix(b.urls[0], "opc.tcp://"), "]:")
		if port == "" {
			port = b.urls[0][strings.LastIndex(b.urls[0], ":")+1:]
		}
		if strings.HasPrefix(want, "opc.tcp://") && strings.HasSuffix(want, ":"+port) && len(want) < 300 {
			eps = append(eps, b.endpoint(strings.TrimSuffix(strings.TrimSpace(req.EndpointURL), "/")))
		} else {
			for _, u := range b.urls {
				eps = append(eps, b.endpoint(u))
			}
		}
	}
	return &ua.GetEndpointsResponse{ResponseHeader: header(r, ua.StatusOK), Endpoints: eps}, nil
}

func (b *backend) handleFindServers(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	if _, ok := r.(*ua.FindServersRequest); !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	return &ua.FindServersResponse{ResponseHeader: header(r, ua.StatusOK), Servers: []*ua.ApplicationDescription{b.application()}}, nil
}
