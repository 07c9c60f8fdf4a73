package docs_test

import (
	"os"
	"strings"
	"testing"
)

// TestUnknownAndDisabledHandlersAsDocumented checks configuration.md's
// statements about handler names portcullis does not know and handlers
// not enabled; internal/app's TestUnknownAndDisabledHandlersNeverServe
// checks the server does what they say.
func TestUnknownAndDisabledHandlersAsDocumented(t *testing.T) {
	doc, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(doc)), " ")
	for _, says := range []string{
		"An **enabled** block for a handler name portcullis does not know stops start-up with its key and line",
		"with `enabled: false` the block is warned about and ignored",
		"a rule naming a handler portcullis does not know, like one naming a disabled handler, answers every request it matches with 500",
		"a rule naming a disabled one never serves",
	} {
		if !strings.Contains(text, says) {
			t.Errorf("configuration.md does not say %q", says)
		}
	}
	if strings.Contains(text, "even with `enabled: false`") {
		t.Error("configuration.md says an unknown handler stops start-up even when it is disabled; it is warned about and ignored")
	}
}
