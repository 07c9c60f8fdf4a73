package kratostest

import (
	"fmt"
	"os"
	"path/filepath"
)

// identitySchema has one trait, email, which is the password identifier.
const identitySchema = `{
  "$id": "https://portcullis.test/identity.schema.json",
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Person",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {
          "type": "string",
          "format": "email",
          "title": "E-Mail",
          "ory.sh/kratos": {
            "credentials": { "password": { "identifier": true } }
          }
        }
      },
      "required": ["email"],
      "additionalProperties": false
    }
  }
}
`

// configTemplate is Kratos's configuration for tests. The UI URLs point at
// the public API itself: tests drive the flows through the JSON API and
// never need a UI. Breach checks (haveibeenpwned) are off: tests run
// without internet access.
const configTemplate = `version: v1.3.1
dsn: memory
log:
  level: warning
  leak_sensitive_values: false
serve:
  public:
    host: 127.0.0.1
    port: %[1]d
    base_url: http://127.0.0.1:%[1]d/
  admin:
    host: 127.0.0.1
    port: %[2]d
    base_url: http://127.0.0.1:%[2]d/
secrets:
  cookie: ["%[3]s"]
  cipher: ["%[4]s"]
session:
  lifespan: %[5]s
  cookie:
    same_site: Lax
identity:
  default_schema_id: default
  schemas:
    - id: default
      url: file://%[6]s
courier:
  smtp:
    connection_uri: smtp://127.0.0.1:1/?disable_starttls=true
selfservice:
  default_browser_return_url: http://127.0.0.1:%[1]d/
  allowed_return_urls:
    - http://127.0.0.1:%[1]d/
  methods:
    password:
      enabled: true
      config:
        haveibeenpwned_enabled: false
        identifier_similarity_check_enabled: false
        min_password_length: 8
  flows:
    error:
      ui_url: http://127.0.0.1:%[1]d/ui/error
    settings:
      ui_url: http://127.0.0.1:%[1]d/ui/settings
    logout:
      after:
        default_browser_return_url: http://127.0.0.1:%[1]d/ui/login
    login:
      ui_url: http://127.0.0.1:%[1]d/ui/login
    registration:
      enabled: true
      ui_url: http://127.0.0.1:%[1]d/ui/registration
      after:
        password:
          hooks:
            - hook: session
`

func (k *Kratos) writeConfig(publicPort, adminPort int) error {
	schemaPath := filepath.Join(k.dir, "identity.schema.json")
	if err := os.WriteFile(schemaPath, []byte(identitySchema), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(configTemplate, publicPort, adminPort,
		randomHex(16), randomHex(16), k.opts.SessionLifespan.String(), schemaPath)
	return os.WriteFile(k.cfgPath, []byte(cfg), 0o600)
}
