package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portcullis-proxy/portcullis/internal/app"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			b := app.Build()
			fmt.Fprintf(cmd.OutOrStdout(), "portcullis %s", b.Version)
			if b.Commit != "" {
				fmt.Fprintf(cmd.OutOrStdout(), " (%s %s)", b.Commit, b.Date)
			}
			fmt.Fprintln(cmd.OutOrStdout())
		},
	}
}
