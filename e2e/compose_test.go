package e2e

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/config/configtest"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/proctest"
)

// These tests need no container engine: docker-compose.yml is checked with
// docker-compose's own validator, the configuration it mounts is loaded by
// the real programs, and the Dockerfile's build commands are run natively.
// TestComposeStack (compose_stack_test.go) builds and runs both files when
// a Docker Engine answers.

// composeMount is where docker-compose.yml mounts contrib/quickstart.
const composeMount = "/etc/config/quickstart/"

func dockerCompose(t *testing.T) string {
	t.Helper()
	return mustTool(t, "run scripts/install-test-deps.sh (apt-get install docker-compose)", "docker-compose")
}

// TestComposeFileValidates runs `docker-compose config` on the repository's
// docker-compose.yml and checks the shape of the result: the services of
// Ory's guide plus portcullis and the demo app, on one network, Kratos
// v1.3.1, both images built from the repository's Dockerfile, and every
// file the services are told to read present in contrib/quickstart.
func TestComposeFileValidates(t *testing.T) {
	dc := dockerCompose(t)
	run := func(args ...string) []byte {
		cmd := exec.Command(dc, append([]string{"-f", "docker-compose.yml"}, args...)...)
		cmd.Dir = repoRoot
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	run("config", "-q")

	var doc struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build *struct {
				Context string `yaml:"context"`
				Target  string `yaml:"target"`
			} `yaml:"build"`
			Command  any            `yaml:"command"`
			Networks map[string]any `yaml:"networks"`
			Volumes  []struct {
				Type   string `yaml:"type"`
				Source string `yaml:"source"`
				Target string `yaml:"target"`
			} `yaml:"volumes"`
		} `yaml:"services"`
		Networks map[string]any `yaml:"networks"`
	}
	if err := yaml.Unmarshal(run("config"), &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range doc.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"demo-app", "kratos", "kratos-migrate", "kratos-selfservice-ui-node", "mailslurper", "portcullis"}
	if !slices.Equal(names, want) {
		t.Fatalf("services = %v, want %v", names, want)
	}
	if len(doc.Networks) != 1 {
		t.Errorf("networks = %v, want one", doc.Networks)
	}
	for name, s := range doc.Services {
		if len(s.Networks) != 1 {
			t.Errorf("%s: networks %v, want the one network", name, s.Networks)
		}
	}
	for _, name := range []string{"kratos", "kratos-migrate"} {
		if img := doc.Services[name].Image; img != "oryd/kratos:v1.3.1" {
			t.Errorf("%s: image %q, want oryd/kratos:v1.3.1", name, img)
		}
	}
	targets := dockerfileTargets(t)
	for _, name := range []string{"portcullis", "demo-app"} {
		b := doc.Services[name].Build
		if b == nil || filepath.Clean(b.Context) != repoRoot || !slices.Contains(targets, b.Target) {
			t.Errorf("%s: build %+v, want the repository's Dockerfile and one of its targets %v", name, b, targets)
		}
	}
	// Every configuration path a command names must exist in the mounted
	// directory.
	pathRE := regexp.MustCompile(regexp.QuoteMeta(composeMount) + `[A-Za-z0-9_./-]+`)
	for name, s := range doc.Services {
		mounted := false
		for _, v := range s.Volumes {
			if v.Target == strings.TrimSuffix(composeMount, "/") {
				mounted = filepath.Clean(v.Source) == quickstartDir
			}
		}
		cmd, _ := json.Marshal(s.Command)
		for _, p := range pathRE.FindAllString(string(cmd), -1) {
			if !mounted {
				t.Errorf("%s: reads %s but does not mount contrib/quickstart at %s", name, p, composeMount)
				continue
			}
			if _, err := os.Stat(filepath.Join(quickstartDir, strings.TrimPrefix(p, composeMount))); err != nil {
				t.Errorf("%s: reads %s, which contrib/quickstart lacks", name, p)
			}
		}
	}
}

// TestComposeValidatorRejectsBrokenFiles shows the validation above can
// fail: a misspelt key and a dependency on a missing service are refused.
func TestComposeValidatorRejectsBrokenFiles(t *testing.T) {
	dc := dockerCompose(t)
	cases := []struct{ name, doc string }{
		{"unknown key", "version: \"3.7\"\nservices:\n  app:\n    imagee: busybox\n"},
		{"missing dependency", "version: \"3.7\"\nservices:\n  app:\n    image: busybox\n    depends_on: [missing]\n"},
	}
	for _, tc := range cases {
		bad := filepath.Join(t.TempDir(), "docker-compose.yml")
		if err := os.WriteFile(bad, []byte(tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(dc, "-f", bad, "config", "-q").CombinedOutput()
		if err == nil {
			t.Errorf("%s: docker-compose accepted\n%s\n%s", tc.name, tc.doc, out)
		}
	}
}

// TestQuickstartVariantsAgree keeps contrib/quickstart/compose in step with
// the native quickstart: with the compose network's hostnames and paths
// mapped back, the rules and portcullis's configuration are the same
// documents.
func TestQuickstartVariantsAgree(t *testing.T) {
	toNative := strings.NewReplacer(
		"http://kratos:4433", "http://127.0.0.1:4433",
		"http://demo-app:4457", "http://127.0.0.1:4457",
		"host: 0.0.0.0", "host: 127.0.0.1",
		"file://"+composeMount+"compose/access-rules.yml", "file://contrib/quickstart/access-rules.yml",
	)
	for _, name := range []string{"access-rules.yml", "portcullis.yml"} {
		t.Run(name, func(t *testing.T) {
			native := readYAML(t, filepath.Join(quickstartDir, name), nil)
			compose := readYAML(t, filepath.Join(quickstartDir, "compose", name), toNative)
			if !reflect.DeepEqual(native, compose) {
				a, _ := json.MarshalIndent(native, "", "  ")
				b, _ := json.MarshalIndent(compose, "", "  ")
				t.Errorf("compose/%s differs from %s beyond hostnames and paths:\nnative:\n%s\ncompose (mapped):\n%s", name, name, a, b)
			}
		})
	}
}

func readYAML(t *testing.T, path string, r *strings.Replacer) any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if r != nil {
		s = r.Replace(s)
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestComposeConfigurationLoads loads what the compose services are given:
// Kratos v1.3.1 starts with compose/kratos.yml (an in-memory database in
// place of the SQLite volume, loopback ports), and portcullis builds every
// rule of compose/access-rules.yml with compose/portcullis.yml.
func TestComposeConfigurationLoads(t *testing.T) {
	t.Run("kratos", func(t *testing.T) {
		kratosBin := kratostest.Binary(t)
		dir := t.TempDir()
		cfg := filepath.Join(dir, "kratos.yml")
		data, err := os.ReadFile(filepath.Join(quickstartDir, "compose", "kratos.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(composeMount)) {
			t.Fatalf("compose/kratos.yml no longer reads from %s; update the test", composeMount)
		}
		data = bytes.ReplaceAll(data, []byte(composeMount), []byte(quickstartDir+"/"))
		os.WriteFile(cfg, data, 0o600)
		ports := proctest.FreePorts(t, 2)
		cmd := exec.Command(kratosBin, "serve", "--dev", "--sqa-opt-out", "-c", cfg)
		cmd.Env = []string{"DSN=memory",
			"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT=" + strconv.Itoa(ports[0]),
			"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT=" + strconv.Itoa(ports[1])}
		startKratos(t, cmd,
			"http://127.0.0.1:"+strconv.Itoa(ports[0])+"/health/ready",
			"http://127.0.0.1:"+strconv.Itoa(ports[1])+"/admin/health/ready")
	})
	t.Run("portcullis", func(t *testing.T) {
		dir := t.TempDir()
		data, err := os.ReadFile(filepath.Join(quickstartDir, "compose", "portcullis.yml"))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(data), "file://"+composeMount, "file://"+quickstartDir+"/")
		s = strings.ReplaceAll(s, "host: 0.0.0.0", "host: 127.0.0.1")
		cfgPath := filepath.Join(dir, "portcullis.yml")
		os.WriteFile(cfgPath, []byte(s), 0o600)
		cfg := configtest.Load(t, cfgPath)
		for _, w := range cfg.Warnings {
			t.Errorf("compose/portcullis.yml: %s", w)
		}
		log := logrus.New()
		log.Out = proctest.NewBuffer(16 << 10)
		srv, err := app.New(cfg, log)
		if err != nil {
			t.Fatalf("portcullis does not start with the compose configuration: %v", err)
		}
		// As many rules as the quickstart's own file holds.
		native, err := os.ReadFile(filepath.Join(quickstartDir, "access-rules.yml"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := rules.Parse("access-rules.yml", native)
		if err != nil {
			t.Fatal(err)
		}
		set := srv.Rules.Current()
		if set == nil || len(want) == 0 || set.Len() != len(want) {
			t.Fatalf("compose rules: got %v, want the quickstart's %d rules", set, len(want))
		}
	})
}

// dockerfileTargets returns the names of the Dockerfile's stages.
func dockerfileTargets(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, line := range dockerfileInstructions(t) {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.EqualFold(f[0], "FROM") && strings.EqualFold(f[2], "AS") {
			out = append(out, f[3])
		}
	}
	return out
}

// dockerfileInstructions returns the Dockerfile's instructions with line
// continuations joined and comments dropped.
func dockerfileInstructions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// TestDockerfileBuildsStaticNonRootImages checks the Dockerfile without an
// engine: each final stage (portcullis, demo-app) copies one binary from
// the build stage and runs as the non-root user, and the build stage's `go
// build` commands, run here as written, produce statically linked
// binaries (no ELF interpreter), which the libc-less base image needs.
func TestDockerfileBuildsStaticNonRootImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	ins := dockerfileInstructions(t)
	// The final stages.
	stages := map[string][]string{}
	cur := ""
	for _, in := range ins {
		f := strings.Fields(in)
		if strings.EqualFold(f[0], "FROM") {
			cur = ""
			if len(f) >= 4 {
				cur = f[3]
			}
		}
		stages[cur] = append(stages[cur], in)
	}
	for _, target := range []string{"portcullis", "demo-app"} {
		body := strings.Join(stages[target], "\n")
		if !strings.Contains(body, "COPY --from=build /out/"+target+" ") {
			t.Errorf("stage %s does not copy /out/%s from the build stage:\n%s", target, target, body)
		}
		if !regexp.MustCompile(`(?m)^USER nonroot`).MatchString(body) {
			t.Errorf("stage %s does not run as the non-root user:\n%s", target, body)
		}
	}
	if last := dockerfileTargets(t); len(last) == 0 || last[len(last)-1] != "portcullis" {
		t.Errorf("the default (last) target is %v, want portcullis", last)
	}

	// The build stage's go build commands, run natively.
	var builds []string
	for _, in := range stages["build"] {
		if strings.HasPrefix(in, "RUN ") && strings.Contains(in, "go build") {
			builds = append(builds, strings.Split(strings.TrimPrefix(in, "RUN "), "&&")...)
		}
	}
	outRE := regexp.MustCompile(`-o /out/([a-z-]+) (\./[A-Za-z0-9_/-]+)`)
	dir := t.TempDir()
	built := 0
	for _, b := range builds {
		m := outRE.FindStringSubmatch(b)
		if m == nil {
			continue
		}
		if !strings.Contains(b, "CGO_ENABLED=0") {
			t.Errorf("%q does not disable cgo", strings.TrimSpace(b))
		}
		bin := filepath.Join(dir, m[1])
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, m[2])
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", m[2], err, out)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", m[1])
			}
		}
		f.Close()
		built++
	}
	if built != 2 {
		t.Errorf("found %d go build commands writing /out/<name>, want 2 (portcullis, demo-app)", built)
	}
}

// TestComposeOverrideChangesOnlyStandIns keeps the test-only override to
// what e2e/testdata/docker-compose.test.yml says it changes: the names of
// the two images built from the Dockerfile, and the image and command of
// the two services whose images cannot be made here. Everything else the
// stack test runs is docker-compose.yml's.
func TestComposeOverrideChangesOnlyStandIns(t *testing.T) {
	var doc struct {
		Services map[string]map[string]any `yaml:"services"`
		Rest     map[string]any            `yaml:",inline"`
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, composeOverride))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for key := range doc.Rest {
		if key != "version" {
			t.Errorf("the override sets top-level %q", key)
		}
	}
	allowed := map[string][]string{
		"portcullis":                 {"image"},
		"demo-app":                   {"image"},
		"kratos-selfservice-ui-node": {"image", "command"},
		"mailslurper":                {"image", "command"},
	}
	for name, svc := range doc.Services {
		keys, ok := allowed[name]
		if !ok {
			t.Errorf("the override changes service %s", name)
			continue
		}
		for key := range svc {
			if !slices.Contains(keys, key) {
				t.Errorf("the override sets %s.%s", name, key)
			}
		}
		// Stand-ins run the demo app built from the Dockerfile.
		if img, _ := svc["image"].(string); !strings.HasPrefix(img, "portcullis-compose-test/") {
			t.Errorf("%s: image %q is not one built from the Dockerfile", name, img)
		}
	}
}

// TestDockerImagesScriptWithoutEngine: with no Docker Engine answering,
// scripts/docker-images.sh says so and exits 3, the status the compose
// stack test's skip rests on, without making anything.
func TestDockerImagesScriptWithoutEngine(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker command")
	}
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "docker-images.sh"))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "no Docker Engine answers") {
		t.Errorf("docker-images.sh without an engine: %v\n%s", err, out)
	}
}
