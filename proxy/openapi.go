package proxy

import (
	_ "embed" // the OpenAPI document is compiled into the binary
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// openAPIDocument is the OpenAPI 3 description of every route this server
// answers (openapi.yaml, beside this file). It is embedded rather than read
// at run time so that the document served always matches the binary
// serving it; openapi_test.go keeps the two from drifting by checking the
// document against the registered routes and every end-to-end response
// against the document.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPIPath is where the document is served, unauthenticated, so that
// clients and API tooling can discover the API without a token.
const OpenAPIPath = "/api/openapi.yaml"

// mimeYAML is the media type of the document (RFC 9512).
const mimeYAML = "application/yaml"

// openAPIRoutes registers GET /api/openapi.yaml on the unauthenticated
// /api group. Being under /api, the answer follows the API's conventions
// (ETag and 304, gzip), which suits a document clients fetch repeatedly.
func (s *Server) openAPIRoutes(api *echo.Group) {
	api.GET(strings.TrimPrefix(OpenAPIPath, "/api"), serveOpenAPI) // api is the /api group
}

// serveOpenAPI answers the embedded document as is.
func serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, mimeYAML, openAPIDocument)
}
