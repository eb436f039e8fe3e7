// Package api is Arina's HTTP API: the seed-compatible reaction routes, the native
// count query, health, readiness and Prometheus metrics. openapi.yaml describes every
// route (served at /api/v1/openapi.json); openapi_test.go keeps the two in step.
//
// Reads go straight to the store, never through the writer. Writes are validated here
// and handed to the ingest writer; a 201 is sent only after the event was applied.
// Every error is JSON {"error":{"code":...,"message":...}} with a stable code, except
// the seed's 404 {"errors":{"detail":"Not Found"}} on the seed's count routes.
package api
