package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMergeConfigRuleKeysWin(t *testing.T) {
	cases := []struct{ global, rule, want string }{
		{`{"a":1,"b":{"c":2,"d":3}}`, `{"b":{"c":9},"e":[1]}`, `{"a":1,"b":{"c":9,"d":3},"e":[1]}`},
		{``, `{"a":1}`, `{"a":1}`},
		{`{"a":1}`, ``, `{"a":1}`},
		{`{"a":[1,2]}`, `{"a":[3]}`, `{"a":[3]}`},
		{`null`, `null`, `{}`},
	}
	for _, tc := range cases {
		got, err := MergeConfig(json.RawMessage(tc.global), json.RawMessage(tc.rule))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("MergeConfig(%s, %s) = %s, want %s", tc.global, tc.rule, got, tc.want)
		}
	}
	if _, err := MergeConfig(json.RawMessage(`{`), nil); err == nil {
		t.Error("broken global config merged without error")
	}
}

type testConfig struct {
	Name    string   `json:"name"`
	TTL     Duration `json:"ttl"`
	Enabled bool     `json:"enabled"`
}

func (c *testConfig) SetDefaults() { c.Name, c.TTL = "default", Duration(5*time.Second) }
func (c *testConfig) Validate() error {
	if c.Name == "" {
		return errString("key \"name\": must not be empty")
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

func TestDecodeStrict(t *testing.T) {
	var c testConfig
	if err := DecodeStrict(nil, &c); err != nil || c.Name != "default" || c.TTL.D() != 5*time.Second {
		t.Errorf("defaults: %+v %v", c, err)
	}
	c = testConfig{}
	if err := DecodeStrict(json.RawMessage(`{"ttl":"1m","enabled":true}`), &c); err != nil || c.TTL.D() != time.Minute || !c.Enabled || c.Name != "default" {
		t.Errorf("decode: %+v %v", c, err)
	}
	bad := map[string]string{
		`{"nmae":"x"}`:   `unknown field "nmae"`,
		`{"name":1}`:     `key "name": expected string, got number`,
		`{"ttl":"soon"}`: `expected a duration such as "5s"`,
		`{"name":""}`:    `key "name": must not be empty`,
	}
	for in, want := range bad {
		c = testConfig{}
		if err := DecodeStrict(json.RawMessage(in), &c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeStrict(%s) = %v, want %q", in, err, want)
		}
	}
}
