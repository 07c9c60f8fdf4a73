package main

import (
	"errors"
	"fmt"
	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/portcullis-proxy/portcullis/schemas"
)

// checkSchemas checks the configuration file (when given) against
// config.schema.json and every local rules file among locs (file://PATH,
// a bare path, or the .json/.yaml/.yml files of a directory) against
// rules.schema.json, printing each violation as file:line: message. It
// reports the worst finding. http(s):// and inline://
// repositories are not read here; the rule compiler still checks them.
func checkSchemas(w io.Writer, cfgFile string, locs []string) schemaResult {
	sc, err := schemas.New()
	if err != nil {
		fmt.Fprintln(w, err)
		return schemaViolations
	}
	res := schemaOK
	report := func(errs []error) {
		for _, e := range errs {
			fmt.Fprintln(w, e)
			var se *docsyntax.Error
			if errors.As(e, &se) {
				res = schemaSyntax
			} else if res == schemaOK {
				res = schemaViolations
			}
		}
	}
	if cfgFile != "" {
		if data, err := os.ReadFile(cfgFile); err == nil {
			report(sc.CheckConfig(cfgFile, data))
		}
	}
	for _, loc := range locs {
		for _, path := range localRuleFiles(loc) {
			data, err := os.ReadFile(path)
			if err != nil {
				continue // the loader reports it
			}
			report(sc.CheckRules(path, data))
		}
	}
	return res
}

// schemaResult is the outcome of checkSchemas: a syntax error in any file
// outranks schema violations, so the summary names what to fix first.
type schemaResult int

const (
	schemaOK schemaResult = iota
	schemaViolations
	schemaSyntax
)

// localRuleFiles lists the files behind a repository location that is on
// the local file system, as the rule loader reads them.
func localRuleFiles(loc string) []string {
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") || strings.HasPrefix(loc, "inline://") {
		return nil
	}
	path := strings.TrimPrefix(loc, "file://")
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if !fi.IsDir() {
		return []string{path}
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".json", ".yaml", ".yml":
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, filepath.Join(path, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out
}
