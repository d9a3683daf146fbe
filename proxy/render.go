package proxy

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// The organization reads are the service's hot path (every dashboard page
// and every service lookup), so their JSON is appended by hand into a reused
// buffer instead of going through encoding/json: no reflection, no maps, no
// intermediate strings, and custom_data — already a compact JSON object the
// domain pre-encoded at Build — is copied as is rather than re-validated.
// Strings, numbers and timestamps come out byte for byte as encoding/json
// writes them, HTML-safe escaping included (render_test.go checks it), so
// these answers cannot drift from the routes that use c.JSON; custom_data and
// promoted_from are the bytes Logto stored, which are valid JSON already.

// appendEnvelopeHead starts an envelope whose data follows:
// {"code":N,"message":"…","data":
func appendEnvelopeHead(b []byte, code int, message string) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = appendString(b, message)
	return append(b, `,"data":`...)
}

// appendEnvelopeTail closes an envelope started by appendEnvelopeHead. The
// newline matches echo's c.JSON, so every answer of the API ends the same.
func appendEnvelopeTail(b []byte) []byte {
	return append(b, "}\n"...)
}

// orgShape says which optional members an organization object carries.
type orgShape uint8

const (
	// shapeDetail is GET /<entity>/{id}: no counts.
	shapeDetail orgShape = iota
	// shapeListItem is an item of GET /<entity>: counts by type.
	shapeListItem
)

// appendOrg appends the upstream organization object (upstream-my-contract
// §2.9, minus what DESIGN §3 does not serve: systems_count,
// applications_count, and logto_synced_at/logto_sync_error, which have no
// source when Logto is the record).
func appendOrg(b []byte, o *hierarchy.Org, shape orgShape) []byte {
	b = append(b, `{"id":"`...)
	b = o.ID.AppendText(b)
	b = append(b, `","logto_id":`...)
	b = appendString(b, o.LogtoID)
	b = append(b, `,"name":`...)
	b = appendString(b, o.Name)
	b = append(b, `,"description":`...)
	b = appendString(b, o.Description)
	b = append(b, `,"custom_data":`...)
	b = appendRaw(b, o.CustomData)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, o.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, o.UpdatedAt)
	b = append(b, `,"deleted_at":`...)
	b = appendTime(b, o.DeletedAt)
	b = append(b, `,"suspended_at":`...)
	b = appendTime(b, o.SuspendedAt)
	if o.HasSuspendedByKey() {
		b = append(b, `,"suspended_by_org_id":`...)
		b = appendNullableString(b, o.SuspendedByOrgID)
	}
	b = append(b, `,"rebranding_enabled":`...)
	b = strconv.AppendBool(b, o.RebrandingEnabled())
	if o.RebrandingEnabled() {
		b = append(b, `,"rebranding_org_id":`...)
		b = appendString(b, o.RebrandingOrgID)
	}
	if shape == shapeListItem {
		switch o.Type {
		case hierarchy.TypeDistributor:
			b = append(b, `,"resellers_count":`...)
			b = strconv.AppendInt(b, int64(o.ResellersCount), 10)
			b = append(b, `,"customers_count":`...)
			b = strconv.AppendInt(b, int64(o.CustomersCount), 10)
		case hierarchy.TypeReseller:
			b = append(b, `,"customers_count":`...)
			b = strconv.AppendInt(b, int64(o.CustomersCount), 10)
		}
	}
	if o.Creator != nil {
		b = append(b, `,"created_by":`...)
		b = appendCreator(b, o.Creator)
	}
	if o.Type == hierarchy.TypeDistributor && len(o.PromotedFrom) > 0 {
		b = append(b, `,"promoted_from":`...)
		b = appendRaw(b, o.PromotedFrom)
	}
	return append(b, '}')
}

// appendPickerItem appends a GET /organizations item:
// {id, logto_id, name, description, type}.
func appendPickerItem(b []byte, o *hierarchy.Org) []byte {
	b = append(b, `{"id":"`...)
	b = o.ID.AppendText(b)
	b = append(b, `","logto_id":`...)
	b = appendString(b, o.LogtoID)
	b = append(b, `,"name":`...)
	b = appendString(b, o.Name)
	b = append(b, `,"description":`...)
	b = appendString(b, o.Description)
	b = append(b, `,"type":`...)
	b = appendString(b, o.Type.String())
	return append(b, '}')
}

// appendCreator appends the creator snapshot (the upstream's OrgCreator),
// on_behalf_of only when true.
func appendCreator(b []byte, c *hierarchy.Creator) []byte {
	b = append(b, `{"user_id":`...)
	b = appendString(b, c.UserID)
	b = append(b, `,"username":`...)
	b = appendString(b, c.Username)
	b = append(b, `,"name":`...)
	b = appendString(b, c.Name)
	b = append(b, `,"email":`...)
	b = appendString(b, c.Email)
	b = append(b, `,"organization_id":`...)
	b = appendString(b, c.OrganizationID)
	b = append(b, `,"organization_name":`...)
	b = appendString(b, c.OrganizationName)
	if c.OnBehalfOf {
		b = append(b, `,"on_behalf_of":true`...)
	}
	return append(b, '}')
}

// appendPagination appends the upstream pagination object, with the same
// omissions as Pagination's JSON tags.
func appendPagination(b []byte, p Pagination) []byte {
	b = append(b, `{"page":`...)
	b = strconv.AppendInt(b, int64(p.Page), 10)
	b = append(b, `,"page_size":`...)
	b = strconv.AppendInt(b, int64(p.PageSize), 10)
	b = append(b, `,"total_count":`...)
	b = strconv.AppendInt(b, int64(p.TotalCount), 10)
	b = append(b, `,"total_pages":`...)
	b = strconv.AppendInt(b, int64(p.TotalPages), 10)
	b = append(b, `,"has_next":`...)
	b = strconv.AppendBool(b, p.HasNext)
	b = append(b, `,"has_prev":`...)
	b = strconv.AppendBool(b, p.HasPrev)
	if p.NextPage != 0 {
		b = append(b, `,"next_page":`...)
		b = strconv.AppendInt(b, int64(p.NextPage), 10)
	}
	if p.PrevPage != 0 {
		b = append(b, `,"prev_page":`...)
		b = strconv.AppendInt(b, int64(p.PrevPage), 10)
	}
	if p.SortBy != "" {
		b = append(b, `,"sort_by":`...)
		b = appendString(b, p.SortBy)
	}
	if p.SortDirection != "" {
		b = append(b, `,"sort_direction":`...)
		b = appendString(b, p.SortDirection)
	}
	return append(b, '}')
}

// appendTime appends t as encoding/json does (RFC 3339 with nanoseconds when
// present), or null for the zero time: the upstream's nullable timestamps.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendNullableString appends s, or null when it is "".
func appendNullableString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

// appendRaw appends pre-encoded JSON, or {} when there is none (the domain
// always provides an object; this keeps the output valid regardless).
func appendRaw(b, raw []byte) []byte {
	if len(raw) == 0 {
		return append(b, "{}"...)
	}
	return append(b, raw...)
}

// hexDigits spells the \u00XX escapes.
const hexDigits = "0123456789abcdef"

// safeASCII reports whether appendString copies the ASCII byte c as is:
// the same set encoding/json leaves alone with HTML escaping on (everything
// printable except ", \, <, > and &).
func safeASCII(c byte) bool {
	return c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// appendString appends s as a JSON string exactly as encoding/json writes
// it: short escapes for " \ \b \f \n \r \t, \u00XX for other control
// characters and for < > & (HTML-safe), \u2028 and \u2029 (JavaScript-safe),
// and U+FFFD in place of each invalid UTF-8 byte.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safeASCII(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
