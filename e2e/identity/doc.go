// Package identity holds end-to-end tests of the identity handlers
// running inside the whole server: a JWT admitted by the jwt
// authenticator, decided by ladon policies or a remote decision API, and
// handed to the upstream as an ID token that verifies against the
// server's /.well-known/jwks.json. It has no non-test code.
package identity
