// Package server is recguard's HTTP API on gin: the user-rights routes an
// app backend calls for its users (Art. 22-25, 42), the admin routes product
// teams use (settings, the Art. 51 suspension, push audiences, the Art. 44
// rights report), the auditor routes (Art. 46 audits, and one user's
// receipts, redacted, with their chain verification: Art. 24), and the ops
// routes (health, readiness, Prometheus metrics, the OpenAPI document).
//
// Every request carries "Authorization: Bearer <key>"; a key has one role
// (app, admin, auditor) and each route group admits one role. Every error is
// RFC 9457 application/problem+json, and a rejected request changes nothing.
// The routes are described by the OpenAPI 3.1 document served at
// /openapi.json (embedded from openapi.json).
package server
