package errorhandlers

import (
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// JSONConfig configures the `json` error handler.
type JSONConfig struct {
	// Verbose adds the error's cause to the body. Causes never contain
	// credentials but may name internal hosts; keep it off in production.
	Verbose bool `json:"verbose"`
}

// NewJSON builds the `json` error handler: it answers the error's status
// with a JSON body {"error":{"code","status","message"}}.
func NewJSON(c *JSONConfig, _ pipeline.Deps) (pipeline.ErrorHandler, error) {
	return jsonHandler{verbose: c.Verbose}, nil
}

type jsonHandler struct {
	verbose bool
}

func (h jsonHandler) HandleError(w http.ResponseWriter, r *http.Request, err error) {
	pipeline.WriteRequestError(w, r, err, h.verbose)
}
