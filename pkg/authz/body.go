package authz

// BodyRouter is a Router that can say, before a request's body is read,
// whether its route reads one. An adapter that receives the body itself
// (the HTTP mode) reads it only for such routes and no further than the
// limit, so that a caller without a key cannot make keygate buffer bodies
// on every route (SPEC §16). Routers that do not implement it get every
// body the adapter reads.
type BodyRouter interface {
	// BodyLimit returns how many body bytes the route of in reads (its
	// GraphQL max_body_bytes); 0 means this request's route reads no body.
	// in.Body is not set yet. It must be safe for concurrent use.
	BodyLimit(in *RouteInput) int
}
