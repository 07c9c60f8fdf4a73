// Package forwardauthtest is the test harness shared by the forward-auth
// integrations (contrib/nginx, contrib/caddy, contrib/traefik): one
// configuration (and, for Caddy and Traefik, one set of rules) served by a
// real portcullis in-process, a real upstream that reports what it
// received, a real gateway process started from the shipped files, and one
// table of requests every gateway must answer the same way. Only tests
// import it.
package forwardauthtest
