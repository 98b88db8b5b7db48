package api

import (
	_ "embed"
	"net/http"

	"github.com/acme/payments/internal/buildinfo"
)

// version answers GET /version: the module version and VCS revision the
// serving binary was built from.
func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, buildinfo.Read())
}

// openAPIDoc is the hand-written OpenAPI 3 description of Routes;
// TestOpenAPIMatchesRoutes keeps the two in step.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document served at /openapi.json.
func OpenAPI() []byte { return openAPIDoc }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openAPIDoc)
}
