package server

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document describing every route.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func serveOpenAPI(c *gin.Context) { c.Data(http.StatusOK, "application/json", openAPI) }

// HealthResponse is GET /healthz and GET /readyz.
type HealthResponse struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, HealthResponse{Status: "ok"}) }

// readyz is ready when the store answers and every follower is current.
func (s *Server) readyz(c *gin.Context) {
	if _, err := s.st.Settings(c.Request.Context()); err != nil {
		failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "store unreachable: %v", err)
		return
	}
	if st := s.client.Stats(); !st.Verified {
		failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "%d changelog followers not current (oldest confirmation %v ago): answers fail closed", st.UnverifiedLogs, st.Lag.Round(1e6))
		return
	}
	c.JSON(http.StatusOK, HealthResponse{Status: "ready"})
}
