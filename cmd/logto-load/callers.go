package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// This file gets the load its callers the way real ones get theirs — a
// session through the dashboard's login exchange, a service token from
// Logto's token endpoint — and the organizations they may ask about, from
// the proxy itself.

// setupTimeout bounds each call made while preparing a run.
const setupTimeout = 30 * time.Second

// exchange signs the simulator user userID in through POST
// /api/auth/exchange with a Logto user access token, as the dashboard does,
// and returns the session token.
func exchange(ctx context.Context, client *http.Client, base string, t *tree, userID string) (string, error) {
	logtoToken, err := t.sim.IssueUserToken(userID, logtotest.UserTokenOptions{Opaque: true})
	if err != nil {
		return "", fmt.Errorf("issue Logto user token: %w", err)
	}
	body, err := json.Marshal(map[string]string{"access_token": logtoToken})
	if err != nil {
		return "", fmt.Errorf("encode exchange: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/auth/exchange", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("build exchange: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		Token string `json:"token"`
	}
	if err := callJSON(client, req, &out); err != nil {
		return "", fmt.Errorf("login exchange: %w", err)
	}
	if out.Token == "" {
		return "", errors.New("login exchange: no token in the answer")
	}
	return out.Token, nil
}

// serviceToken gets a Logto-issued access token for the proxy's API resource
// with the client_credentials grant of the template's service application,
// as another service would.
func serviceToken(ctx context.Context, client *http.Client, t *tree) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {t.tpl.APIResource.Indicator},
		"scope": {"read:customers read:resellers read:distributors read:users"}}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.sim.URL()+"/oidc/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(t.tpl.ServiceApp.ID, t.tpl.ServiceApp.Secret)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint answered %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("token endpoint: no access token (%v)", err)
	}
	return out.AccessToken, nil
}

// visible is what a caller may ask about: customer ids and search terms.
type visible struct {
	ids   []string
	terms []string
	total int // customers the caller sees in all
}

// maxIDs bounds the customer ids the load picks from (ten pages).
const maxIDs = 1000

// discover lists the customers token sees through the proxy (first pages,
// 100 at a time) and derives search terms from their names.
func discover(ctx context.Context, client *http.Client, base, token string) (visible, error) {
	var v visible
	seenTerms := map[string]bool{}
	for page := 1; len(v.ids) < maxIDs; page++ {
		var data struct {
			Customers []struct {
				LogtoID string `json:"logto_id"`
				Name    string `json:"name"`
			} `json:"customers"`
			Pagination struct {
				TotalCount int  `json:"total_count"`
				HasNext    bool `json:"has_next"`
			} `json:"pagination"`
		}
		if err := getEnvelope(ctx, client, base+"/api/customers?page_size=100&page="+strconv.Itoa(page), token, &data); err != nil {
			return v, fmt.Errorf("list customers: %w", err)
		}
		v.total = data.Pagination.TotalCount
		for _, c := range data.Customers {
			v.ids = append(v.ids, c.LogtoID)
			if term := searchTerm(c.Name); term != "" && !seenTerms[term] {
				seenTerms[term] = true
				v.terms = append(v.terms, term)
			}
		}
		if !data.Pagination.HasNext {
			break
		}
	}
	if len(v.ids) == 0 {
		return v, errors.New("the caller sees no customer")
	}
	return v, nil
}

// searchTerm derives a search from a customer's name: its last word up to
// the last dot ("Customer 3.12.45" → "3.12", which finds a reseller's
// customers and a few others), else the last word itself.
func searchTerm(name string) string {
	words := strings.Fields(name)
	if len(words) == 0 {
		return ""
	}
	last := words[len(words)-1]
	if i := strings.LastIndexByte(last, '.'); i > 0 {
		return last[:i]
	}
	return last
}

// getEnvelope GETs an API route and decodes the data of its envelope.
func getEnvelope(ctx context.Context, client *http.Client, u, token string, data any) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return callJSON(client, req, data)
}

// callJSON sends req and decodes the data of a 200 envelope into out.
func callJSON(client *http.Client, req *http.Request, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: status %d, undecodable answer: %w", req.Method, req.URL.Path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d %q", req.Method, req.URL.Path, resp.StatusCode, env.Message)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%s %s: data: %w", req.Method, req.URL.Path, err)
	}
	return nil
}
