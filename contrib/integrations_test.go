// Package contrib_test checks the shipped integration files that no test
// here can run (no Kubernetes cluster, no Envoy binary): that
// they parse, that they keep the settings their READMEs describe, and that
// the configuration and rules inside the Kubernetes ConfigMap load through
// the same code as `portcullis serve`. nginx, Caddy and Traefik run for
// real in contrib/nginx, contrib/caddy and contrib/traefik.
package contrib_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/config/configtest"
	"github.com/portcullis-proxy/portcullis/internal/app"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/rules"
	"github.com/portcullis-proxy/portcullis/schemas"
)

// docs reads every YAML document of a file.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, m)
	}
}

// get walks a path of map keys and list indexes ("0").
func get(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i := int(p[0] - '0')
			if i >= len(c) {
				t.Fatalf("no index %s in %v", p, path)
			}
			v = c[i]
		default:
			t.Fatalf("cannot walk %q of %v", p, path)
		}
		if v == nil {
			t.Fatalf("no %q in path %v", p, path)
		}
	}
	return v
}

func TestKubernetesManifests(t *testing.T) {
	sc, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]map[string]any{}
	for _, f := range []string{"configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml"} {
		for _, d := range docs(t, filepath.Join("kubernetes", f)) {
			byKind[d["kind"].(string)] = d
		}
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"} {
		if byKind[k] == nil {
			t.Fatalf("no %s", k)
		}
	}

	// The ConfigMap's files load as `portcullis serve` loads them, with the
	// rules repository pointed at a copy of the rules file.
	data := get(t, byKind["ConfigMap"], "data").(map[string]any)
	cfgText, rulesText := data["portcullis.yml"].(string), data["access-rules.yml"].(string)
	for _, e := range sc.CheckConfig("configmap portcullis.yml", []byte(cfgText)) {
		t.Error(e)
	}
	for _, e := range sc.CheckRules("configmap access-rules.yml", []byte(rulesText)) {
		t.Error(e)
	}
	const mounted = "/etc/portcullis/rules/access-rules.yml"
	if !strings.Contains(cfgText, "file://"+mounted) {
		t.Fatalf("portcullis.yml does not read the rules at %s", mounted)
	}
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "access-rules.yml")
	os.WriteFile(rulesFile, []byte(rulesText), 0o600)
	cfgFile := filepath.Join(dir, "portcullis.yml")
	os.WriteFile(cfgFile, []byte(strings.Replace(cfgText, mounted, rulesFile, 1)), 0o600)
	env := []string{"AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL=http://kratos.test/sessions/whoami"}
	cfg := configtest.Load(t, cfgFile, env...)
	if len(cfg.Warnings) > 0 {
		t.Errorf("configuration warnings: %v", cfg.Warnings)
	}
	cat := registry.NewCatalog()
	deps, err := app.HandlerDeps(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Enable(cat, cfg, deps); err != nil {
		t.Fatal(err)
	}
	comp, err := app.Compiler(cat, cfg)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadFiles(context.Background(), comp, cfg.AccessRules.Repositories)
	if err != nil {
		t.Fatal(err)
	}
	if errs := set.Overlaps().Errors(); len(errs) > 0 {
		t.Errorf("rules overlap: %v", errs)
	}

	// The Deployment mounts the rules where the configuration reads them,
	// probes the API's health endpoints, exposes the configured ports and
	// gives shutdown more time than portcullis takes.
	pod := get(t, byKind["Deployment"], "spec", "template", "spec").(map[string]any)
	c := get(t, pod, "containers", "0").(map[string]any)
	if p := get(t, c, "livenessProbe", "httpGet", "path"); p != "/health/alive" {
		t.Errorf("liveness path %v", p)
	}
	if p := get(t, c, "readinessProbe", "httpGet", "path"); p != "/health/ready" {
		t.Errorf("readiness path %v", p)
	}
	ports := map[string]int{}
	for _, p := range get(t, c, "ports").([]any) {
		m := p.(map[string]any)
		ports[m["name"].(string)] = m["containerPort"].(int)
	}
	want := map[string]int{"proxy": cfg.Serve.Proxy.Port, "api": cfg.Serve.API.Port, "metrics": cfg.Serve.Prometheus.Port}
	for name, port := range want {
		if ports[name] != port {
			t.Errorf("container port %s = %d, configuration says %d", name, ports[name], port)
		}
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if p := get(t, c, probe, "httpGet", "port"); p != "api" {
			t.Errorf("%s port %v, want api", probe, p)
		}
	}
	// The admin token comes from the Secret, mounted where the
	// configuration reads it; the Redis URL names the Redis Service.
	secret := docs(t, filepath.Join("kubernetes", "secret.yaml"))[0]
	if secret["kind"] != "Secret" || get(t, secret, "stringData", "token") == nil {
		t.Fatalf("secret.yaml is not a Secret with a token: %v", secret)
	}
	secretName := get(t, secret, "metadata", "name")
	tokenFile := cfg.Serve.API.Admin.TokenFile
	mountedSecret := false
	for _, v := range get(t, pod, "volumes").([]any) {
		vol := v.(map[string]any)
		if s, ok := vol["secret"].(map[string]any); ok && s["secretName"] == secretName {
			for _, m := range get(t, c, "volumeMounts").([]any) {
				mm := m.(map[string]any)
				if mm["name"] == vol["name"] && filepath.Join(mm["mountPath"].(string), "token") == tokenFile {
					mountedSecret = true
				}
			}
		}
	}
	if tokenFile == "" || !mountedSecret {
		t.Errorf("serve.api.admin.token_file %q is not the mounted %v Secret's token", tokenFile, secretName)
	}
	redisNames := map[string]bool{}
	for _, d := range docs(t, filepath.Join("kubernetes", "redis.yaml")) {
		redisNames[d["kind"].(string)+"/"+get(t, d, "metadata", "name").(string)] = true
	}
	if !redisNames["Service/portcullis-redis"] || !redisNames["StatefulSet/portcullis-redis"] {
		t.Errorf("redis.yaml lacks the portcullis-redis Service or StatefulSet: %v", redisNames)
	}
	if u := cfg.Revocation.Redis.URL; !strings.HasPrefix(u, "redis://portcullis-redis:6379") {
		t.Errorf("revocation.redis.url %q does not name the Redis Service", u)
	}

	grace := time.Duration(get(t, pod, "terminationGracePeriodSeconds").(int)) * time.Second
	if grace <= cfg.Serve.Proxy.Timeout.Shutdown {
		t.Errorf("terminationGracePeriodSeconds %s <= serve.proxy.timeout.shutdown %s", grace, cfg.Serve.Proxy.Timeout.Shutdown)
	}
	if args := get(t, c, "args").([]any); !slices.Equal(args, []any{"serve", "-c", "/etc/portcullis/portcullis.yml"}) {
		t.Errorf("args %v", args)
	}
	mount := get(t, c, "volumeMounts", "0").(map[string]any)
	if mount["mountPath"] != "/etc/portcullis" || mount["subPath"] != nil {
		t.Errorf("config mount %v: want /etc/portcullis without subPath (so updates reach the pod)", mount)
	}
	items := get(t, pod, "volumes", "0", "configMap", "items").([]any)
	paths := map[string]string{}
	for _, it := range items {
		m := it.(map[string]any)
		paths[m["key"].(string)] = "/etc/portcullis/" + m["path"].(string)
	}
	if paths["access-rules.yml"] != mounted || paths["portcullis.yml"] != "/etc/portcullis/portcullis.yml" {
		t.Errorf("ConfigMap items mount at %v", paths)
	}
	if ref := get(t, byKind["HorizontalPodAutoscaler"], "spec", "scaleTargetRef", "name"); ref != "portcullis" {
		t.Errorf("HPA targets %v", ref)
	}
	if _, ok := get(t, c, "resources", "requests").(map[string]any)["cpu"]; !ok {
		t.Error("no CPU request: the HPA's utilisation target needs one")
	}
}

func TestTraefikFiles(t *testing.T) {
	d := docs(t, filepath.Join("traefik", "dynamic.yml"))[0]
	fa := get(t, d, "http", "middlewares", "portcullis", "forwardAuth").(map[string]any)
	if fa["address"] != "http://127.0.0.1:4456/decisions" {
		t.Errorf("address %v", fa["address"])
	}
	if fa["trustForwardHeader"] != false {
		t.Errorf("trustForwardHeader %v, want false", fa["trustForwardHeader"])
	}
	if h := fa["authResponseHeaders"].([]any); !slices.Contains(h, any("X-User")) {
		t.Errorf("authResponseHeaders %v", h)
	}
	if m := get(t, d, "http", "routers", "application", "middlewares").([]any); !slices.Equal(m, []any{"strip-identity", "portcullis"}) {
		t.Errorf("router middlewares %v, want the client's identity headers removed before the decision", m)
	}
	strip := get(t, d, "http", "middlewares", "strip-identity", "headers", "customRequestHeaders").(map[string]any)
	for _, h := range fa["authResponseHeaders"].([]any) {
		if v, ok := strip[h.(string)]; !ok || v != "" {
			t.Errorf("strip-identity does not remove %v", h)
		}
	}
	s := docs(t, filepath.Join("traefik", "traefik.yml"))[0]
	if f := get(t, s, "providers", "file", "filename"); !strings.HasSuffix(f.(string), "dynamic.yml") {
		t.Errorf("static config loads %v", f)
	}
}

func TestEnvoyFile(t *testing.T) {
	d := docs(t, filepath.Join("envoy", "envoy.yaml"))[0]
	hcm := get(t, d, "static_resources", "listeners", "0", "filter_chains", "0", "filters", "0", "typed_config")
	filters := get(t, hcm, "http_filters").([]any)
	if len(filters) < 2 || get(t, filters[0], "name") != "envoy.filters.http.ext_authz" || get(t, filters[len(filters)-1], "name") != "envoy.filters.http.router" {
		t.Fatalf("http_filters: ext_authz must come first and the router last: %v", filters)
	}
	// The application and portcullis must see the same path.
	for key, want := range map[string]any{"normalize_path": true, "merge_slashes": true, "path_with_escaped_slashes_action": "REJECT_REQUEST"} {
		if got := get(t, hcm, key); got != want {
			t.Errorf("http_connection_manager %s = %v, want %v", key, got, want)
		}
	}
	ea := get(t, filters[0], "typed_config")
	if get(t, ea, "failure_mode_allow") != false {
		t.Error("failure_mode_allow must be false (fail closed)")
	}
	if get(t, ea, "transport_api_version") != "V3" {
		t.Error("transport_api_version must be V3")
	}
	for _, k := range []string{"normalize_path", "merge_slashes"} {
		if get(t, hcm, k) != true {
			t.Errorf("%s must be true: Envoy routes the path portcullis decided on", k)
		}
	}
	if get(t, hcm, "path_with_escaped_slashes_action") != "REJECT_REQUEST" {
		t.Error("path_with_escaped_slashes_action must be REJECT_REQUEST")
	}
	cluster := get(t, ea, "grpc_service", "envoy_grpc", "cluster_name")
	found := false
	for _, c := range get(t, d, "static_resources", "clusters").([]any) {
		if get(t, c, "name") == cluster {
			found = true
			if port := get(t, c, "load_assignment", "endpoints", "0", "lb_endpoints", "0", "endpoint", "address", "socket_address", "port_value"); port != 4457 {
				t.Errorf("portcullis cluster port %v, want the documented serve.grpc port 4457", port)
			}
			get(t, c, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicit_http_config", "http2_protocol_options")
		}
	}
	if !found {
		t.Errorf("no cluster %v", cluster)
	}
}
