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
// BadNotWritable), Browse, BrowseNext (continuation points), GetEndpoints and the monitored item
// services are replaced or validated before gopcua's code, panics are recovered, responses over
// ResponseBudget are refused with BadResponseTooLarge, OperationLimits are raised to 1,000 and
// readable, every host name clients use gets an endpoint. gopcua listens on a private loopback
// port; the Server forwards each client, so Stop and Restart close every client socket at once
// and start afresh on the same port.
//
// Caveats: gopcua's session services are not reachable and stay unguarded; subscriptions have no
// sampling, queue or deadband; subscription ids are reused, so serve one agent per instance;
// gopcua logs a few lines through the standard log package at start. Several clients holding
// subscriptions at once were seen to lose a channel ("unexpected EOF" in gopcua's server): not
// understood yet.
package opcua
