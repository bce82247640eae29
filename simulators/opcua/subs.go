package opcua

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
)

// Subscriptions are ours, not gopcua's. gopcua v0.8.0 numbers a new subscription
// len(subscriptions)+1: once one is deleted the next client is handed a live subscription's id and
// overwrites it in the table, so the first client's next request on its subscription is refused
// (gopcua's client then drops its channel: the server saw "unexpected EOF") and, when either of
// the two ends, it deletes the other's items too. Here ids only grow, each subscription belongs to
// one session, publish requests queue per session and are answered on the channel they came on,
// and the sampling loop only stores the latest value per item under a mutex (gopcua's blocking
// channel sends could deadlock).

// Limits of the subscription service.
const (
	// maxPublishQueue bounds the publish requests a session may leave waiting; one more is
	// answered BadTooManyPublishRequests.
	maxPublishQueue = 100
	// minPublishingInterval is the smallest publishing interval granted, in ms.
	minPublishingInterval = 50
)

// subscription is one client subscription.
type subscription struct {
	id       uint32
	session  string // the auth token of its session
	interval time.Duration
	keep     uint32 // max keep-alive count: intervals without data before a keep-alive
	life     uint32 // lifetime count: intervals without a publish request before it dies

	items   map[uint32]*item                         // by monitored item id
	pending map[uint32]*ua.MonitoredItemNotification // latest unsent value per item id

	due       time.Time // end of the current publishing interval
	idle      uint32    // intervals since the last message
	starved   uint32    // intervals late without a publish request
	late      bool      // a message is due and waits for a publish request
	lateSince time.Time
	seq       uint32 // sequence number of the last data message
}

// item is one monitored item.
type item struct {
	id     uint32
	sub    *subscription
	node   *ua.NodeID
	key    string // node.String()
	attr   ua.AttributeID
	handle uint32
	mode   ua.MonitoringMode
}

// pubReq is a publish request waiting for a message.
type pubReq struct {
	sc       *uasc.SecureChannel
	reqID    uint32
	req      *ua.PublishRequest
	deadline time.Time // the client's timeout hint; zero: none
}

// session is what the subscription service knows of one gopcua session.
type session struct {
	token *ua.NodeID
	subs  map[uint32]*subscription
	queue []pubReq
}

// subService holds every subscription and monitored item of one backend.
type subService struct {
	b    *backend
	wake chan struct{}
	done chan struct{}

	mu       sync.Mutex
	lastSub  uint32
	lastItem uint32
	subs     map[uint32]*subscription
	items    map[uint32]*item
	byNode   map[string][]*item
	sessions map[string]*session
	checked  time.Time // last look for closed sessions
}

// send is a response to write once the service's mutex is released.
type send struct {
	sc    *uasc.SecureChannel
	reqID uint32
	resp  ua.Response
}

func newSubService(b *backend) *subService {
	return &subService{
		b:        b,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		subs:     map[uint32]*subscription{},
		items:    map[uint32]*item{},
		byNode:   map[string][]*item{},
		sessions: map[string]*session{},
	}
}

func (ss *subService) poke() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// run publishes until ctx ends: it sleeps until the next publishing interval ends or a publish
// request arrives.
func (ss *subService) run(ctx context.Context) {
	defer close(ss.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := ss.step(time.Now())
		t.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ss.wake:
		}
	}
}

// step ends the publishing intervals due by now, answers what publish requests it can and
// returns when it must run again.
func (ss *subService) step(now time.Time) time.Time {
	var out []send
	ss.mu.Lock()
	if now.Sub(ss.checked) >= time.Second {
		ss.checked = now
		for key, sess := range ss.sessions {
			if ss.b.srv.Session(&ua.RequestHeader{AuthenticationToken: sess.token}) == nil {
				ss.dropSessionLocked(key)
			}
		}
	}
	next := now.Add(time.Second)
	var late []*subscription
	for _, s := range ss.subs {
		for !s.due.After(now) {
			s.due = s.due.Add(s.interval)
			if s.late {
				s.starved++
				continue
			}
			s.idle++
			if len(s.pending) > 0 || s.idle >= s.keep {
				s.late, s.lateSince, s.starved = true, now, 0
			}
		}
		if s.late && s.starved > s.life {
			ss.b.s.log.Info("opcua subscription expired", "subscription", s.id)
			ss.deleteSubLocked(s)
			out = append(out, ss.orphanedLocked(s.session)...)
			continue
		}
		if s.late {
			late = append(late, s)
		}
		if s.due.Before(next) {
			next = s.due
		}
	}
	// The longest waiting first, so that subscriptions sharing a session take turns.
	slices.SortFunc(late, func(a, b *subscription) int { return a.lateSince.Compare(b.lateSince) })
	for _, s := range late {
		if pr, ok := ss.takeLocked(s.session, now); ok {
			out = append(out, ss.messageLocked(s, pr, now))
		}
	}
	ss.mu.Unlock()
	ss.sendAll(out)
	return next
}

// sendAll writes the responses in order; a failed write loses that message only (its client is
// gone or will reconnect).
func (ss *subService) sendAll(out []send) {
	for _, x := range out {
		if err := x.sc.SendResponseWithContext(context.Background(), x.reqID, x.resp); err != nil {
			ss.b.s.log.Debug("opcua publish response not sent", "err", err)
		}
	}
}

// takeLocked pops the oldest live publish request of session key.
func (ss *subService) takeLocked(key string, now time.Time) (pubReq, bool) {
	sess := ss.sessions[key]
	if sess == nil {
		return pubReq{}, false
	}
	for len(sess.queue) > 0 {
		pr := sess.queue[0]
		sess.queue = sess.queue[1:]
		// A request its client gave up on would swallow the message: skip it, unanswered (a
		// late answer to a gopcua client is dropped, an error would make it reconnect).
		if pr.deadline.IsZero() || now.Before(pr.deadline) {
			return pr, true
		}
	}
	return pubReq{}, false
}

// messageLocked builds s's next message (its pending values, or a keep-alive) for pr.
func (ss *subService) messageLocked(s *subscription, pr pubReq, now time.Time) send {
	msg := &ua.NotificationMessage{PublishTime: now, NotificationData: []*ua.ExtensionObject{}}
	if len(s.pending) == 0 {
		// A keep-alive carries the next sequence number and does not use it.
		msg.SequenceNumber = s.seq + 1
		if msg.SequenceNumber == 0 {
			msg.SequenceNumber = 1
		}
	} else {
		ids := make([]uint32, 0, len(s.pending))
		for id := range s.pending {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		dcn := &ua.DataChangeNotification{DiagnosticInfos: []*ua.DiagnosticInfo{}}
		for _, id := range ids {
			dcn.MonitoredItems = append(dcn.MonitoredItems, s.pending[id])
		}
		clear(s.pending)
		s.seq++
		if s.seq == 0 {
			s.seq = 1
		}
		msg.SequenceNumber = s.seq
		eo := ua.NewExtensionObject(dcn)
		eo.UpdateMask()
		msg.NotificationData = []*ua.ExtensionObject{eo}
	}
	s.late, s.idle, s.starved = false, 0, 0
	return send{pr.sc, pr.reqID, &ua.PublishResponse{
		ResponseHeader:           header(pr.req, ua.StatusOK),
		SubscriptionID:           s.id,
		AvailableSequenceNumbers: []uint32{}, // no retransmission queue
		NotificationMessage:      msg,
		Results:                  ss.acksLocked(pr),
		DiagnosticInfos:          []*ua.DiagnosticInfo{},
	}}
}

// acksLocked answers the acknowledgements of pr: Good for the session's own subscriptions
// (nothing is kept for retransmission, so there is nothing to release).
func (ss *subService) acksLocked(pr pubReq) []ua.StatusCode {
	res := make([]ua.StatusCode, len(pr.req.SubscriptionAcknowledgements))
	key := pr.req.RequestHeader.AuthenticationToken.String()
	for i, a := range pr.req.SubscriptionAcknowledgements {
		if a == nil || ss.subs[a.SubscriptionID] == nil || ss.subs[a.SubscriptionID].session != key {
			res[i] = ua.StatusBadSubscriptionIDInvalid
		}
	}
	return res
}

// orphanedLocked answers the waiting publish requests of a session left without subscriptions
// with BadNoSubscription, as the spec asks (gopcua's client pauses publishing on it).
func (ss *subService) orphanedLocked(key string) []send {
	sess := ss.sessions[key]
	if sess == nil || len(sess.subs) > 0 {
		return nil
	}
	var out []send
	for _, pr := range sess.queue {
		out = append(out, send{pr.sc, pr.reqID, publishFault(pr.req, ua.StatusBadNoSubscription)})
	}
	sess.queue = nil
	return out
}

func publishFault(r ua.Request, code ua.StatusCode) ua.Response {
	return &ua.ServiceFault{ResponseHeader: header(r, code)}
}

// deleteSubLocked removes s and its items.
func (ss *subService) deleteSubLocked(s *subscription) {
	for _, it := range s.items {
		ss.unindexLocked(it)
	}
	delete(ss.subs, s.id)
	if sess := ss.sessions[s.session]; sess != nil {
		delete(sess.subs, s.id)
	}
}

func (ss *subService) unindexLocked(it *item) {
	delete(ss.items, it.id)
	delete(it.sub.pending, it.id)
	delete(it.sub.items, it.id)
	list := slices.DeleteFunc(ss.byNode[it.key], func(x *item) bool { return x == it })
	if len(list) == 0 {
		delete(ss.byNode, it.key)
	} else {
		ss.byNode[it.key] = list
	}
}

// dropSessionLocked forgets a closed session, its subscriptions and publish requests.
func (ss *subService) dropSessionLocked(key string) {
	sess := ss.sessions[key]
	if sess == nil {
		return
	}
	for _, s := range sess.subs {
		ss.deleteSubLocked(s)
	}
	delete(ss.sessions, key)
}

// sessionOf returns the key of r's session, registering it, or BadSessionIdInvalid.
func (ss *subService) sessionLocked(r ua.Request) (*session, ua.StatusCode) {
	sess := ss.b.srv.Session(r.Header())
	if sess == nil || sess.AuthTokenID == nil {
		return nil, ua.StatusBadSessionIDInvalid
	}
	key := sess.AuthTokenID.String()
	if s := ss.sessions[key]; s != nil {
		return s, ua.StatusOK
	}
	s := &session{token: sess.AuthTokenID, subs: map[uint32]*subscription{}}
	ss.sessions[key] = s
	return s, ua.StatusOK
}

// notify stores the current value of every node in ids for the items reporting it.
func (ss *subService) notify(ids []*ua.NodeID, now time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, nid := range ids {
		for _, it := range ss.byNode[nid.String()] {
			ss.sampleLocked(it, now)
		}
	}
}

func (ss *subService) sampleLocked(it *item, now time.Time) {
	if it.mode != ua.MonitoringModeReporting {
		return
	}
	it.sub.pending[it.id] = &ua.MonitoredItemNotification{
		ClientHandle: it.handle,
		Value:        ss.b.read(it.node, it.attr, ua.TimestampsToReturnBoth, now),
	}
}

// handleCreateSubscription grants an id never given before on this backend and revises the
// parameters: a publishing interval of 50 ms to 60 s, a keep-alive at least every 30 s, and a
// lifetime of at least three keep-alives and at most max(three keep-alives, one minute), so that
// the subscriptions of vanished clients go soon.
func (ss *subService) handleCreateSubscription(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.CreateSubscriptionRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	iv := req.RequestedPublishingInterval
	if math.IsNaN(iv) || iv < minPublishingInterval {
		iv = minPublishingInterval
	}
	iv = math.Round(min(iv, 60000))
	ka := req.RequestedMaxKeepAliveCount
	if ka == 0 {
		ka = 10
	}
	ka = min(ka, max(1, uint32(30000/iv)))
	lt := max(req.RequestedLifetimeCount, 3*ka)
	lt = min(lt, max(3*ka, uint32(60000/iv)))

	ss.mu.Lock()
	sess, st := ss.sessionLocked(r)
	if st != ua.StatusOK {
		ss.mu.Unlock()
		return nil, st
	}
	ss.lastSub++
	if ss.lastSub == 0 {
		ss.lastSub = 1
	}
	interval := time.Duration(iv) * time.Millisecond
	s := &subscription{
		id: ss.lastSub, session: sess.token.String(), interval: interval, keep: ka, life: lt,
		items: map[uint32]*item{}, pending: map[uint32]*ua.MonitoredItemNotification{},
		due: time.Now().Add(interval),
	}
	ss.subs[s.id] = s
	sess.subs[s.id] = s
	ss.mu.Unlock()
	ss.poke()
	return &ua.CreateSubscriptionResponse{
		ResponseHeader:            header(r, ua.StatusOK),
		SubscriptionID:            s.id,
		RevisedPublishingInterval: iv,
		RevisedLifetimeCount:      lt,
		RevisedMaxKeepAliveCount:  ka,
	}, nil
}

// handlePublish queues the request on its session; the loop answers it when one of the
// session's subscriptions has a message.
func (ss *subService) handlePublish(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.PublishRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	ss.mu.Lock()
	sess, st := ss.sessionLocked(r)
	switch {
	case st != ua.StatusOK:
		ss.mu.Unlock()
		return nil, st
	case len(sess.subs) == 0:
		ss.mu.Unlock()
		return nil, ua.StatusBadNoSubscription
	case len(sess.queue) >= maxPublishQueue:
		ss.mu.Unlock()
		return nil, ua.StatusBadTooManyPublishRequests
	}
	pr := pubReq{sc: sc, reqID: reqID, req: req}
	if h := req.RequestHeader.TimeoutHint; h > 0 {
		pr.deadline = time.Now().Add(time.Duration(h) * time.Millisecond)
	}
	sess.queue = append(sess.queue, pr)
	ss.mu.Unlock()
	ss.poke()
	return nil, nil // answered later, by the loop
}

// handleDeleteSubscriptions deletes the session's own subscriptions; another session's id is
// BadSubscriptionIdInvalid.
func (ss *subService) handleDeleteSubscriptions(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.DeleteSubscriptionsRequest)
	switch {
	case !ok:
		return nil, ua.StatusBadRequestTypeInvalid
	case len(req.SubscriptionIDs) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(req.SubscriptionIDs) > MaxMonitoredItemsPerCall:
		return nil, ua.StatusBadTooManyOperations
	}
	ss.mu.Lock()
	sess, st := ss.sessionLocked(r)
	if st != ua.StatusOK {
		ss.mu.Unlock()
		return nil, st
	}
	res := make([]ua.StatusCode, len(req.SubscriptionIDs))
	for i, id := range req.SubscriptionIDs {
		s := sess.subs[id]
		if s == nil {
			res[i] = ua.StatusBadSubscriptionIDInvalid
			continue
		}
		ss.deleteSubLocked(s)
	}
	out := ss.orphanedLocked(sess.token.String())
	ss.mu.Unlock()
	ss.sendAll(out)
	return &ua.DeleteSubscriptionsResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// ownLocked returns subscription id of r's session, or a status.
func (ss *subService) ownLocked(r ua.Request, id uint32) (*subscription, ua.StatusCode) {
	sess, st := ss.sessionLocked(r)
	if st != ua.StatusOK {
		return nil, st
	}
	s := sess.subs[id]
	if s == nil {
		return nil, ua.StatusBadSubscriptionIDInvalid
	}
	return s, ua.StatusOK
}

// handleCreateMonitoredItems checks every item (node, attribute, parameters) and caps a
// subscription at MaxMonitoredItemsPerSubscription. Sampling interval, queue size and filter are
// not honoured: an item reports the latest value of each sample the server takes; the revised
// parameters say so.
func (ss *subService) handleCreateMonitoredItems(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
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
	now := time.Now()
	sampling := float64(ss.b.s.interval) / float64(time.Millisecond)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, st := ss.ownLocked(r, req.SubscriptionID)
	if st != ua.StatusOK {
		return nil, st
	}
	res := make([]*ua.MonitoredItemCreateResult, len(req.ItemsToCreate))
	for i, it := range req.ItemsToCreate {
		code := ua.StatusOK
		switch {
		case it == nil || it.ItemToMonitor == nil || it.ItemToMonitor.NodeID == nil:
			code = ua.StatusBadNodeIDInvalid
		case it.RequestedParameters == nil:
			code = ua.StatusBadMonitoredItemFilterInvalid
		case it.MonitoringMode > ua.MonitoringModeReporting:
			code = ua.StatusBadMonitoringModeInvalid
		case len(s.items) >= MaxMonitoredItemsPerSubscription:
			code = ua.StatusBadTooManyMonitoredItems
		default:
			dv := ss.b.read(it.ItemToMonitor.NodeID, it.ItemToMonitor.AttributeID, ua.TimestampsToReturnNeither, now)
			if dv.Status == ua.StatusBadNodeIDUnknown || dv.Status == ua.StatusBadNodeIDInvalid || dv.Status == ua.StatusBadAttributeIDInvalid {
				code = dv.Status
			}
		}
		if code != ua.StatusOK {
			res[i] = &ua.MonitoredItemCreateResult{StatusCode: code, FilterResult: ua.NewExtensionObject(nil)}
			continue
		}
		ss.lastItem++
		if ss.lastItem == 0 {
			ss.lastItem = 1
		}
		m := &item{
			id: ss.lastItem, sub: s, node: it.ItemToMonitor.NodeID, key: it.ItemToMonitor.NodeID.String(),
			attr: it.ItemToMonitor.AttributeID, handle: it.RequestedParameters.ClientHandle, mode: it.MonitoringMode,
		}
		ss.items[m.id] = m
		s.items[m.id] = m
		ss.byNode[m.key] = append(ss.byNode[m.key], m)
		ss.sampleLocked(m, now) // the first notification is the current value
		res[i] = &ua.MonitoredItemCreateResult{
			StatusCode: ua.StatusOK, MonitoredItemID: m.id, RevisedSamplingInterval: sampling,
			RevisedQueueSize: 1, FilterResult: ua.NewExtensionObject(nil),
		}
	}
	return &ua.CreateMonitoredItemsResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// items applies fn to each of ids that is an item of the request's subscription and returns a
// status per id.
func (ss *subService) itemsOf(r ua.Request, subID uint32, ids []uint32, fn func(*item)) ([]ua.StatusCode, error) {
	switch {
	case len(ids) == 0:
		return nil, ua.StatusBadNothingToDo
	case len(ids) > MaxMonitoredItemsPerCall:
		return nil, ua.StatusBadTooManyOperations
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, st := ss.ownLocked(r, subID)
	if st != ua.StatusOK {
		return nil, st
	}
	res := make([]ua.StatusCode, len(ids))
	for i, id := range ids {
		it := s.items[id]
		if it == nil {
			res[i] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		fn(it)
	}
	return res, nil
}

func (ss *subService) handleDeleteMonitoredItems(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.DeleteMonitoredItemsRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	res, err := ss.itemsOf(r, req.SubscriptionID, req.MonitoredItemIDs, ss.unindexLocked)
	if err != nil {
		return nil, err
	}
	return &ua.DeleteMonitoredItemsResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}

// handleSetMonitoringMode: Disabled and Sampling items stop reporting (and drop a value not sent
// yet); Reporting ones report again from the next change.
func (ss *subService) handleSetMonitoringMode(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
	req, ok := r.(*ua.SetMonitoringModeRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	if req.MonitoringMode > ua.MonitoringModeReporting {
		return nil, ua.StatusBadMonitoringModeInvalid
	}
	res, err := ss.itemsOf(r, req.SubscriptionID, req.MonitoredItemIDs, func(it *item) {
		it.mode = req.MonitoringMode
		if it.mode != ua.MonitoringModeReporting {
			delete(it.sub.pending, it.id)
		}
	})
	if err != nil {
		return nil, err
	}
	return &ua.SetMonitoringModeResponse{ResponseHeader: header(r, ua.StatusOK), Results: res, DiagnosticInfos: []*ua.DiagnosticInfo{}}, nil
}
