package main

import (
	"fmt"
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
// reports whether everything conforms. http(s):// and inline://
// repositories are not read here; the rule compiler still checks them.
func checkSchemas(w io.Writer, cfgFile string, locs []string) bool {
	ok := true
	report := func(errs []error) {
		for _, e := range errs {
			fmt.Fprintln(w, e)
			ok = false
		}
	}
	if cfgFile != "" {
		if data, err := os.ReadFile(cfgFile); err == nil {
			report(schemas.CheckConfig(cfgFile, data))
		}
	}
	for _, loc := range locs {
		for _, path := range localRuleFiles(loc) {
			data, err := os.ReadFile(path)
			if err != nil {
				continue // the loader reports it
			}
			report(schemas.CheckRules(path, data))
		}
	}
	return ok
}

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
