// Command portcullis is a rule-based, identity-aware reverse proxy that
// loads Ory Oathkeeper's configuration and access rules and keeps every
// WebSocket bound to the session that opened it.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "portcullis",
		Short: "Identity-aware reverse proxy with session-bound WebSockets",
		Long: `portcullis matches each request to an access rule (Ory Oathkeeper's format),
runs the rule's authenticators, authorizer and mutators, and forwards allowed
requests upstream. The same pipeline answers the decision API (/decisions) for
nginx, Traefik and Envoy. WebSockets are carried through a tunnel that closes
when the rule's lifetime ends, the session expires or is revoked.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newRulesCmd(), newVersion())
	return root
}
