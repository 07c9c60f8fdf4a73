// Package forwardauthtest is the test harness shared by the forward-auth
// integrations (contrib/nginx, contrib/caddy, contrib/traefik): one
// configuration and one set of rules served by a real portcullis
// in-process (testsupport/servertest), a real upstream that reports what
// it received, a real gateway process started from the shipped files
// (testsupport/proctest), and one table of requests every gateway must
// answer the same way, each gateway saying only how it passes answers on
// and which path-confusion cases are its own. Only tests import it.
package forwardauthtest
