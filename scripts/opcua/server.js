// An independent OPC UA server (node-opcua) for the tests of drivers/opcua: a peer that shares
// no code with gopcua, with working security and user authentication. Started by
// drivers/opcua/internal/uatest; installed into .deps/opcua by `make deps`.
//
// Usage: node server.js '<json options>'
//   port         TCP port on 127.0.0.1 (required)
//   secure       true: only Basic256Sha256 SignAndEncrypt (or policies x modes); false: only None
//   policies     security policy names offered when secure, e.g. ["Aes256_Sha256_RsaPss"]
//   modes        message security modes offered when secure: ["Sign", "SignAndEncrypt"]
//   users        {"name": "password"}: username tokens accepted; anonymous only when empty
//   userCert     path of an X.509 user certificate (DER or PEM) the server trusts for X509 user
//                identity tokens (offered on the secure endpoints); any other user certificate
//                is refused (BadIdentityTokenRejected), and anonymous clients too. Off by
//                default: the server then keeps node-opcua's default user PKI, which accepts any.
//   pki          directory of the server's own PKI (its certificate survives restarts there)
//   omit         names of the Types variables not to create (a node removed across a restart)
//   gen          written into the String variable "Gen", so a test sees which run answers
//   extra        number of extra Double variables Extra.<i> (benchmarks), changing every second
//   maxNodesPerRead  the OperationLimits value advertised (default 1000)
//
// It prints "ENDPOINT <url>" once it accepts connections. Commands on stdin, one JSON object a
// line: {"op":"remove","name":"Types.Int32"} deletes a node at runtime;
// {"op":"set","name":"Static","value":42} sets the Double variable Static.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const readline = require("readline");
const {
    OPCUAServer, OPCUACertificateManager, Variant, DataType, VariantArrayType,
    SecurityPolicy, MessageSecurityMode, StatusCodes,
} = require("node-opcua");

const opts = JSON.parse(process.argv[2] || "{}");

async function main() {
    const certificateManager = new OPCUACertificateManager({
        rootFolder: path.join(opts.pki, "server"),
        automaticallyAcceptUnknownCertificate: true,
    });
    const users = opts.users || {};
    // A user PKI of the test's own (below pki/user), trusting exactly opts.userCert. node-opcua
    // checks an X509 token's signature, then its certificate with this manager
    // (OPCUAServer.isValidX509IdentityToken): unknown certificates land in user/rejected.
    let userCertificateManager;
    if (opts.userCert) {
        userCertificateManager = new OPCUACertificateManager({
            rootFolder: path.join(opts.pki, "user"),
            automaticallyAcceptUnknownCertificate: false,
            disableFileWatchers: true,
        });
        await userCertificateManager.initialize();
        // X509Certificate reads DER and PEM; raw is the DER the token carries.
        await userCertificateManager.trustCertificate(new crypto.X509Certificate(fs.readFileSync(opts.userCert)).raw);
    }
    const server = new OPCUAServer({
        port: opts.port,
        host: "127.0.0.1",
        hostname: "127.0.0.1",
        alternateHostname: [],
        securityPolicies: opts.secure ? (opts.policies || ["Basic256Sha256"]).map((p) => SecurityPolicy[p]) : [SecurityPolicy.None],
        securityModes: opts.secure ? (opts.modes || ["SignAndEncrypt"]).map((m) => MessageSecurityMode[m]) : [MessageSecurityMode.None],
        allowAnonymous: Object.keys(users).length === 0 && !opts.userCert,
        serverCertificateManager: certificateManager,
        userCertificateManager,
        userManager: { isValidUser: (u, p) => users[u] !== undefined && users[u] === p },
        serverCapabilities: { operationLimits: { maxNodesPerRead: opts.maxNodesPerRead || 1000, maxMonitoredItemsPerCall: 1000 } },
        buildInfo: { productName: "floorlink-test-server" },
    });
    await server.initialize();

    const ns = server.engine.addressSpace.getOwnNamespace();
    const objects = server.engine.addressSpace.rootFolder.objects;
    const line = ns.addFolder(objects, { browseName: "Line1", nodeId: "s=Line1" });
    const types = ns.addFolder(line, { browseName: "Types", nodeId: "s=Line1.Types" });

    const t0 = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    // The static values the tests know (drivers/opcua/internal/uatest.Values mirrors them).
    const statics = [
        ["Boolean", DataType.Boolean, true],
        ["SByte", DataType.SByte, -100],
        ["Byte", DataType.Byte, 200],
        ["Int16", DataType.Int16, -12345],
        ["UInt16", DataType.UInt16, 48879],
        ["Int32", DataType.Int32, -123456789],
        ["UInt32", DataType.UInt32, 3456789012],
        ["Int64", DataType.Int64, [0xEEDDEF0B, 0x82167EEB]], // -1234567890123456789 as [hi, lo]
        ["UInt64", DataType.UInt64, [0xAB54A98C, 0xEB1F0AD2]],         // 12345678901234567890
        ["Float", DataType.Float, 3.5],
        ["Double", DataType.Double, -2.25e10],
        ["String", DataType.String, "Press 1 ünïcode"],
        ["DateTime", DataType.DateTime, t0],
        ["ByteString", DataType.ByteString, Buffer.from([0, 1, 2, 254, 255])],
        ["Enum", DataType.Int32, 3], // declared as an enumeration (MessageSecurityMode) below
        ["DoubleArray", DataType.Double, [1.5, -2.5, 3.25], VariantArrayType.Array],
        ["Int32Array", DataType.Int32, [7, -8, 9], VariantArrayType.Array],
    ];
    const omit = new Set(opts.omit || []);
    const nodes = {};
    for (const [name, dt, value, arrayType] of statics) {
        if (omit.has(name)) continue;
        let v = value;
        if (arrayType) v = dt === DataType.Double ? new Float64Array(value) : new Int32Array(value);
        const variant = new Variant({ dataType: dt, arrayType: arrayType || VariantArrayType.Scalar, value: v });
        nodes[name] = ns.addVariable({
            componentOf: types,
            browseName: name,
            nodeId: "s=Line1.Types." + name,
            dataType: name === "Enum" ? "MessageSecurityMode" : DataType[dt],
            valueRank: arrayType ? 1 : -1,
            accessLevel: "CurrentRead", userAccessLevel: "CurrentRead",
            arrayDimensions: arrayType ? [value.length] : null,
            value: variant,
        });
    }
    nodes.Gen = ns.addVariable({ componentOf: line, browseName: "Gen", nodeId: "s=Line1.Gen", dataType: "String",
        value: new Variant({ dataType: DataType.String, value: String(opts.gen || 0) }) });
    nodes.Static = ns.addVariable({ componentOf: line, browseName: "Static", nodeId: "s=Line1.Static", dataType: "Double",
        value: new Variant({ dataType: DataType.Double, value: 0 }) });
    // Counter changes every 100 ms: the one changing value.
    let counter = 0;
    nodes.Counter = ns.addVariable({ componentOf: line, browseName: "Counter", nodeId: "s=Line1.Counter", dataType: "UInt32",
        value: new Variant({ dataType: DataType.UInt32, value: 0 }) });
    setInterval(() => {
        counter++;
        nodes.Counter.setValueFromSource(new Variant({ dataType: DataType.UInt32, value: counter }));
    }, 100);

    const extra = opts.extra || 0;
    if (extra > 0) {
        const folder = ns.addFolder(line, { browseName: "Extra", nodeId: "s=Line1.Extra" });
        const ex = [];
        for (let i = 0; i < extra; i++) {
            ex.push(ns.addVariable({ componentOf: folder, browseName: "E" + i, nodeId: "s=Line1.Extra.E" + i, dataType: "Double",
                value: new Variant({ dataType: DataType.Double, value: 0 }) }));
        }
        let tick = 0;
        setInterval(() => {
            tick++;
            for (let i = 0; i < ex.length; i++) {
                ex[i].setValueFromSource(new Variant({ dataType: DataType.Double, value: tick + i / 1e6 }));
            }
        }, 1000);
    }

    readline.createInterface({ input: process.stdin }).on("line", (l) => {
        let cmd;
        try { cmd = JSON.parse(l); } catch (e) { console.error("bad command " + l); return; }
        const n = nodes[cmd.name];
        if (!n) { console.error("no node " + cmd.name); return; }
        if (cmd.op === "remove") {
            server.engine.addressSpace.deleteNode(n);
            delete nodes[cmd.name];
        } else if (cmd.op === "set") {
            n.setValueFromSource(new Variant({ dataType: DataType.Double, value: cmd.value }), StatusCodes.Good);
        }
        console.log("DONE " + cmd.op + " " + cmd.name);
    });
    process.stdin.on("end", () => process.exit(0)); // the test's process ended: do not linger

    await server.start();
    console.log("ENDPOINT " + server.getEndpointUrl());
}

main().catch((err) => { console.error(err); process.exit(1); });
