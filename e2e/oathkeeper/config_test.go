package oathkeeper

// configTemplate is the one configuration file both products read. It is a
// valid Oathkeeper v0.40.9 configuration (Oathkeeper validates it against
// its schema at start-up) with every handler the cases use enabled and the
// global configs the handler tests of Oathkeeper use. {{NAME}} placeholders
// are the loopback servers of the environment and the ports of the
// product.
const configTemplate = `
serve:
  proxy: {host: 127.0.0.1, port: {{PROXY}}}
  api: {host: 127.0.0.1, port: {{API}}}
  prometheus: {host: 127.0.0.1, port: {{METRICS}}}
log:
  level: debug
access_rules:
  matching_strategy: {{STRATEGY}}
  repositories:
    - file://{{RULES}}
errors:
  fallback: [json]
  handlers:
    json:
      enabled: true
      config:
        verbose: true
    redirect:
      enabled: true
      config:
        to: http://127.0.0.1:9/login
    www_authenticate:
      enabled: true
      config:
        realm: foobar
authenticators:
  noop:
    enabled: true
  anonymous:
    enabled: true
    config:
      subject: guest
  unauthorized:
    enabled: true
  cookie_session:
    enabled: true
    config:
      check_session_url: {{WHOAMI}}
      preserve_path: true
  bearer_token:
    enabled: true
    config:
      check_session_url: {{WHOAMI}}
      preserve_path: true
  jwt:
    enabled: true
    config:
      jwks_urls: ["{{JWKS}}/rsa"]
  oauth2_introspection:
    enabled: true
    config:
      introspection_url: {{INTROSPECT}}
authorizers:
  allow:
    enabled: true
  deny:
    enabled: true
  remote:
    enabled: true
    config:
      remote: {{AUTHZ}}/allow
  remote_json:
    enabled: true
    config:
      remote: {{AUTHZ}}/allow
      payload: '{"subject": "{{ print .Subject }}"}'
mutators:
  noop:
    enabled: true
  header:
    enabled: true
    config:
      headers:
        X-User: "{{ print .Subject }}"
  cookie:
    enabled: true
    config:
      cookies:
        user: "{{ print .Subject }}"
  id_token:
    enabled: true
    config:
      issuer_url: http://issuer.example/
      jwks_url: {{IDT_KEYS}}
  hydrator:
    enabled: true
    config:
      api:
        url: {{HYDRATOR}}
`
