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
// replaced (Read, Write, Browse, BrowseNext, GetEndpoints, FindServers, DeleteMonitoredItems,
// SetMonitoringMode) or validated before gopcua's code runs. The session services stay
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
	reg(id.CreateSubscriptionRequest_Encoding_DefaultBinary, "create subscription", b.handleCreateSubscription)
	reg(id.DeleteSubscriptionsRequest_Encoding_DefaultBinary, "delete subscriptions", b.withSession(func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		return srv.SubscriptionService.DeleteSubscriptions(sc, r, reqID)
	}))
	reg(id.PublishRequest_Encoding_DefaultBinary, "publish", func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		return srv.SubscriptionService.Publish(sc, r, reqID)
	})
	reg(id.CreateMonitoredItemsRequest_Encoding_DefaultBinary, "create monitored items", b.handleCreateMonitoredItems)
	reg(id.DeleteMonitoredItemsRequest_Encoding_DefaultBinary, "delete monitored items", b.handleDeleteMonitoredItems)
	reg(id.SetMonitoringModeRequest_Encoding_DefaultBinary, "set monitoring mode", b.handleSetMonitoringMode)
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

// withSession refuses requests without a valid session before h: gopcua dereferences the
// session of DeleteSubscriptions and the monitored item services unchecked.
func (b *backend) withSession(h server.Handler) server.Handler {
	return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
		if b.srv.Session(r.Header()) == nil {
			return nil, ua.StatusBadSessionIDInvalid
		}
		return h(sc, r, reqID)
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

// handleCreateSubscription revises the parameters before gopcua sees them: a zero publishing
// interval would panic its subscription goroutine (time.NewTicker(0)), and long lifetimes keep
// dead subscriptions of vanished clients ticking.
func (b *backend) handleCreateSubscription(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.CreateSubscriptionRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	if b.srv.Session(req.RequestHeader) == nil {
		return nil, ua.StatusBadSessionIDInvalid
	}
	rev := *req
	iv := req.RequestedPublishingInterval
	if math.IsNaN(iv) || iv < 50 {
		iv = 50
	}
	iv = math.Round(min(iv, 60000))
	ka := req.RequestedMaxKeepAliveCount
	if ka == 0 {
		ka = 10
	}
	ka = min(ka, max(1, uint32(30000/iv))) // a keep-alive at least every 30 s
	lt := max(req.RequestedLifetimeCount, 3*ka)
	lt = min(lt, max(3*ka, uint32(60000/iv))) // dead after max(3 keep-alives, 1 min) unpolled
	rev.RequestedPublishingInterval, rev.RequestedMaxKeepAliveCount, rev.RequestedLifetimeCount = iv, ka, lt
	return b.srv.SubscriptionService.CreateSubscription(sc, &rev, reqID)
}

// subscriptionOf returns the subscription id of the request's session, or a status.
func (b *backend) subscriptionOf(r ua.Request, subID uint32) ua.StatusCode {
	sess := b.srv.Session(r.Header())
	if sess == nil {
		return ua.StatusBadSessionIDInvalid
	}
	ss := b.srv.SubscriptionService
	ss.Mu.Lock()
	sub := ss.Subs[subID]
	ss.Mu.Unlock()
	if sub == nil || sub.Session == nil || sub.Session.AuthTokenID.String() != sess.AuthTokenID.String() {
		return ua.StatusBadSubscriptionIDInvalid
	}
	return ua.StatusOK
}

// handleCreateMonitoredItems checks every item before gopcua's code, which dereferences them
// unchecked and monitors unknown nodes as Good; it caps a subscription at
// MaxMonitoredItemsPerSubscription.
func (b *backend) handleCreateMonitoredItems(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.CreateMonitoredItemsRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case len(req.ItemsToCreate) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(req.ItemsToCreate) > MaxMonitoredItemsPerCall:
		return nil, ua.StatusBadTooManyOperations
	case req.TimestampsToReturn > ua.TimestampsToReturnNeither:
		return nil, ua.StatusBadTimestampsToReturnInvalid
	}
	if st := b.subscriptionOf(r, req.SubscriptionID); st != ua.StatusOK {
		return nil, st
	}
	mis := b.srv.MonitoredItemService
	mis.Mu.Lock()
	have := len(mis.Subs[req.SubscriptionID])
	mis.Mu.Unlock()
	now := time.Now()
	res := make([]*ua.MonitoredItemCreateResult, len(req.ItemsToCreate))
	var pass []*ua.MonitoredItemCreateRequest
	var where []int
	for i, it := range req.ItemsToCreate {
		code := ua.StatusOK
		switch {
		case it == nil || it.ItemToMonitor == nil || it.ItemToMonitor.NodeID == nil:
			code = ua.StatusBadNodeIDInvalid
		case it.RequestedParameters == nil:
			code = ua.StatusBadMonitoredItemFilterInvalid
		case have+len(pass) >= MaxMonitoredItemsPerSubscription:
			code = ua.StatusBadTooManyMonitoredItems
		default:
			dv := b.read(it.ItemToMonitor.NodeID, it.ItemToMonitor.AttributeID, ua.TimestampsToReturnNeither, now)
			if dv.Status == ua.StatusBadNodeIDUnknown || dv.Status == ua.StatusBadNodeIDInvalid || dv.Status == ua.StatusBadAttributeIDInvalid {
				code = dv.Status
			}
		}
		if code != ua.StatusOK {
			res[i] = &ua.MonitoredItemCreateResult{StatusCode: code, FilterResult: ua.NewExtensionObject(nil)}
			continue
		}
		pass = append(pass, it)
		where = append(where, i)
	}
	if len(pass) > 0 {
		sub := *req
		sub.ItemsToCreate = pass
		resp, err := mis.CreateMonitoredItems(sc, &sub, reqID)
		if err != nil {
			return nil, err
		}
		cr, ok := resp.(*ua.CreateMonitoredItemsResponse)
		if !ok || len(cr.Results) != len(pass) {
			return nil, ua.StatusBadInternalError
		}
		for j, i := range where {
			res[i] = cr.Results[j]
		}
	}
	return &ua.CreateMonitoredItemsResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// itemsOf checks monitored item ids against the request's subscription; it returns a status per
// id and calls fn for each valid item, with the item service locked.
func (b *backend) itemsOf(r ua.Request, subID uint32, ids []uint32, fn func(*server.MonitoredItem)) ([]ua.StatusCode, error) {
	switch {
	case len(ids) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(ids) > MaxMonitoredItemsPerCall:
		return nil, ua.StatusBadTooManyOperations
	}
	if st := b.subscriptionOf(r, subID); st != ua.StatusOK {
		return nil, st
	}
	mis := b.srv.MonitoredItemService
	res := make([]ua.StatusCode, len(ids))
	mis.Mu.Lock()
	defer mis.Mu.Unlock()
	for i, mid := range ids {
		it := mis.Items[mid]
		if it == nil || it.Sub == nil || it.Sub.ID != subID {
			res[i] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		fn(it)
	}
	return res, nil
}

// handleDeleteMonitoredItems replaces gopcua's, which panics on an unknown id.
func (b *backend) handleDeleteMonitoredItems(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.DeleteMonitoredItemsRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	var del []uint32
	res, err := b.itemsOf(r, req.SubscriptionID, req.MonitoredItemIDs, func(it *server.MonitoredItem) { del = append(del, it.ID) })
	if err != nil {
		return nil, err
	}
	for _, mid := range del {
		b.srv.MonitoredItemService.DeleteMonitoredItem(mid)
	}
	return &ua.DeleteMonitoredItemsResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// handleSetMonitoringMode replaces gopcua's, which panics on an unknown id. The mode is stored;
// gopcua's subscriptions ignore it.
func (b *backend) handleSetMonitoringMode(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.SetMonitoringModeRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	if req.MonitoringMode > ua.MonitoringModeReporting {
		return nil, ua.StatusBadMonitoringModeInvalid
	}
	res, err := b.itemsOf(r, req.SubscriptionID, req.MonitoredItemIDs, func(it *server.MonitoredItem) { it.Mode = req.MonitoringMode })
	if err != nil {
		return nil, err
	}
	return &ua.SetMonitoringModeResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}
