// Package opcua serves a simulated line (simulators/line) over OPC UA, security None and
// anonymous only, with gopcua's server package behind validating handlers.
//
// Address space: Objects/Line1/M<k>/<Name> (ns=2;s=Line1.M<k>.<Name>, Variables), with the
// Types folder holding one variable per built-in type and an Extra folder for line.Config
// ExtraValues. Every variable has its right DataType (a NodeId), ValueRank and ArrayDimensions,
// AccessLevel CurrentRead, a source timestamp (when the value last changed) and a server
// timestamp. The server samples the line every Options.Interval and pushes changed values to
// subscriptions, and Server/ServerStatus/CurrentTime (i=2258) every second.
//
// Guards against gopcua v0.8.0's server (see research/opcua.md): Read, Write (always
// BadNotWritable), Browse, BrowseNext (continuation points), GetEndpoints and the subscription and
// monitored item services are replaced (subs.go), panics are recovered, responses over
// ResponseBudget are refused with BadResponseTooLarge, OperationLimits are raised to 1,000 and
// readable, every host name clients use gets an endpoint. gopcua listens on a private loopback
// port; the Server forwards each client, so Stop and Restart close every client socket at once
// and start afresh on the same port.
//
// Subscriptions are our own, since gopcua's numbered them len+1 and handed a live id to the next
// client: ids only grow, each belongs to one session, publish requests queue per session and are
// answered on their own channel, so several clients may hold subscriptions at once.
//
// Caveats: gopcua's session services are not reachable and stay unguarded; subscriptions have no
// sampling, queue or deadband (the latest value per item per publishing interval), no
// retransmission, no ModifySubscription, SetPublishingMode or Republish; a request gopcua cannot
// decode (e.g. a nil field its encoder writes as nothing) makes its server stop reading that
// channel while leaving it open, so that client times out; gopcua's client drops its channel on
// any response with a bad service result, so errors like BadNothingToDo end a gopcua client's
// connection (a client matter, not the server's); gopcua logs a few lines through the standard
// log package at start.
package opcua
