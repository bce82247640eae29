package publish

import "embed"

// Schemas holds the JSON Schemas of what JSON mode publishes: record.schema.json for telemetry,
// kpi and event messages, status.schema.json for the retained gateway status. docs/ keeps a copy
// that a test checks equal.
//
//go:embed schema/*.schema.json
var Schemas embed.FS
