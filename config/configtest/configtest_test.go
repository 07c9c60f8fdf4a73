package configtest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-proxy/portcullis/config/configtest"
)

func TestLoadAddressesEveryHandler(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yml")
	if err := os.WriteFile(p, []byte("serve:\n  proxy:\n    port: 1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := configtest.Load(t, p, "AUTHENTICATORS_COOKIE_SESSION_ENABLED=true", "MUTATORS_ID_TOKEN_CONFIG_ISSUER_URL=https://issuer")
	if c.Serve.Proxy.Port != 1234 || !c.Authenticators["cookie_session"].Enabled || c.Mutators["id_token"].Config["issuer_url"] != "https://issuer" {
		t.Errorf("config = %+v", c)
	}
	if len(configtest.Names()["authenticators"]) == 0 {
		t.Error("no authenticator names")
	}
}
