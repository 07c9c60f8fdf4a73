package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with access rule files",
	}
	cmd.AddCommand(newRulesValidate(), newRulesTest())
	return cmd
}

func newRulesValidate() *cobra.Command {
	var file string
	var online bool
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check access rule files without starting the proxy",
		Long: `Check every local FILE (and the -c file) against its JSON Schema
(schemas/rules.schema.json, schemas/config.schema.json), then load every FILE
(JSON or YAML, Oathkeeper's format), build each rule's handlers
with the configuration given by -c (without -c every handler is enabled with an
empty global config), and report every problem as file:line: message.
Overlapping rules are errors: for every pair of rules sharing a method the
URL patterns are intersected as automata, and a request both match is printed
(such requests get 500); a pair that cannot be decided is an error too.
The check is strict: what serve loads with a warning (a rule without an
authorizer or mutators, a handler that is not enabled, an unknown key in a
handler's config) is an error here. Nothing is fetched over the network
(remote key sets are not read) unless --online is given.
Exits 0 when every file loads and checks out, 1 otherwise.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			switch checkSchemas(cmd.ErrOrStderr(), file, files) {
			case schemaSyntax:
				return errors.New("files are not well-formed YAML/JSON (syntax errors)")
			case schemaViolations:
				return errors.New("files do not conform to the schemas")
			}
			comp, err := validationCompiler(file, online)
			if err != nil {
				return err
			}
			set, err := rules.LoadFiles(context.Background(), comp, files)
			if err != nil {
				var es rules.Errors
				list := []error{err}
				if errors.As(err, &es) {
					list = es
				}
				for _, e := range list {
					fmt.Fprintln(cmd.ErrOrStderr(), e.Error()+missingKeyHint(e, file))
				}
				return errors.New("rules are not valid")
			}
			// Two rules matching one request answer it 500: a proven
			// overlap fails validation, and so does a pair the prover
			// could not decide.
			rep := set.Overlaps()
			for _, e := range rep.Errors() {
				fmt.Fprintln(cmd.ErrOrStderr(), e)
			}
			switch {
			case len(rep.Overlaps) > 0:
				return fmt.Errorf("rules overlap: %d pairs", len(rep.Overlaps)+len(rep.Unproven))
			case len(rep.Unproven) > 0:
				return fmt.Errorf("could not prove %d pairs of rules disjoint", len(rep.Unproven))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rules OK\n", set.Len())
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file whose handler settings apply")
	cmd.Flags().BoolVar(&online, "online", false, "let handlers fetch remote documents (key sets) while checking")
	return cmd
}

// validationCompiler builds a compiler from the configuration file, or,
// without one, with every handler enabled on an empty global config so
// that the rule files alone are checked. The compiler is strict, and
// offline unless online is set.
func validationCompiler(file string, online bool) (*rules.Compiler, error) {
	cat := registry.NewCatalog()
	cfg, err := config.Load(file, os.Environ(), registry.HandlerNames(cat))
	if err != nil {
		return nil, err
	}
	log, _ := app.NewLogger(cfg.Log) // nil for a bad log block: handlers then log to slog.Default()
	deps, err := app.HandlerDeps(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	deps.Offline = !online
	if file != "" {
		if err := app.Enable(cat, cfg, deps); err != nil {
			return nil, err
		}
	} else {
		// Every handler that accepts an empty global config; rules that
		// use one that does not are reported as not enabled.
		_ = cat.EnableAll(deps)
	}
	comp, err := app.Compiler(cat, cfg)
	if err != nil {
		return nil, err
	}
	comp.Strict = true
	return comp, nil
}

// missingKeyHint explains a required handler key without a value: such
// keys usually come from the configuration file's global handler config,
// which rules validate reads only with -c.
func missingKeyHint(err error, cfgFile string) string {
	var mk *pipeline.MissingKeyError
	var he *pipeline.HandlerError
	if !errors.As(err, &mk) || !errors.As(err, &he) {
		return ""
	}
	at := he.ConfigSection() + "." + mk.Key
	if cfgFile == "" {
		return fmt.Sprintf(" (not set by the rule; such keys usually come from the configuration file, at %s: pass it with -c FILE)", at)
	}
	return fmt.Sprintf(" (set it in the rule's config or at %s in %s)", at, cfgFile)
}
