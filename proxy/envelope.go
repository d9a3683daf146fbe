// Package proxy is the HTTP face of logto-proxy: the upstream-compatible
// routes under /api, authentication, permission gates, the webhook receiver,
// health and metrics. It turns HTTP into questions for the hierarchy views and
// answers in the upstream backend's exact wire shapes.
package proxy

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Envelope is the upstream backend's response shape, used for every JSON
// answer including errors, so that the dashboard's client code (which reads
// code, message and data) works unchanged.
type Envelope struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

// FieldError is one entry of a validation failure, keyed the way the
// dashboard builds its i18n keys (data.errors[].key and .message).
type FieldError struct {
	Key     string `json:"key"`
	Message string `json:"message"`
	Value   string `json:"value,omitempty"`
}

// ErrorData is the upstream's data object on validation and pass-through
// errors; Errors is omitted when empty so that the shapes match byte for byte.
type ErrorData struct {
	Type    string       `json:"type"`
	Errors  []FieldError `json:"errors,omitempty"`
	Details any          `json:"details,omitempty"`
}

// respond writes an envelope whose code mirrors the HTTP status, as upstream.
func respond(c echo.Context, status int, message string, data any) error {
	return c.JSON(status, Envelope{Code: status, Message: message, Data: data})
}

// fail writes a generic upstream error: {"code":N,"message":"…","data":null}.
func fail(c echo.Context, status int, message string) error {
	return respond(c, status, message, nil)
}

// validationFailed writes the upstream's multi-field validation error, the
// shape the dashboard treats as a form error rather than a toast.
func validationFailed(c echo.Context, errs ...FieldError) error {
	return respond(c, http.StatusBadRequest, "validation failed", ErrorData{Type: "validation_error", Errors: errs})
}
