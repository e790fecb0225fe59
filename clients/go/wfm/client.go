// Package wfm is the Go client of the wfm workflow manager's gRPC API
// (service workflow.v1.WorkflowService).
//
//	c, err := wfm.Dial("127.0.0.1:50051")
//	if err != nil { ... }
//	defer c.Close()
//	res, err := c.Run(ctx, "hello", wfm.ExecuteOptions{Input: map[string]any{"greeting": "hi"}})
//
// Every method takes a context.Context and returns the server's gRPC status
// errors unchanged; use Code, IsNotFound, IsInvalidArgument and friends to
// inspect them. Struct values of the API (inputs, outputs, arguments,
// metadata) are plain map[string]any / any values; those sent go through
// encoding/json, so any value json.Marshal takes works.
//
// Workflows are either native (RegisterOptions.Type, a type compiled into the
// server) or declarative (RegisterOptions.Definition, a graph of steps calling
// tools and other workflows; ParseDefinitionFile reads the JSON form of the
// files of `wfm register -f`).
package wfm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	workflowv1 "github.com/wfm-dev/wfm/clients/go/gen/workflow/v1"
)

// Client is a connection to a wfm server. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn // nil when built by NewClient
	stub workflowv1.WorkflowServiceClient
}

// Option configures Dial.
type Option func(*dialConfig)

type dialConfig struct {
	creds       credentials.TransportCredentials
	token       string
	tokenSet    bool
	tokenNoTLS  bool
	dialOptions []grpc.DialOption
}

// WithTLS connects with TLS using the given configuration (nil: the system's roots).
func WithTLS(cfg *tls.Config) Option {
	return func(c *dialConfig) {
		if cfg == nil {
			cfg = &tls.Config{}
		}
		c.creds = credentials.NewTLS(cfg)
	}
}

// WithTransportCredentials connects with the given transport credentials
// (for example credentials.NewClientTLSFromFile).
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *dialConfig) { c.creds = creds }
}

// WithBearerToken sends "authorization: Bearer <token>" with every call. It
// needs TLS (WithTLS, WithTransportCredentials or an https:// target): over a
// plaintext connection Dial fails, naming WithInsecureBearerToken, which is
// the option for a plaintext connection you trust (loopback).
func WithBearerToken(token string) Option {
	return func(c *dialConfig) { c.token, c.tokenSet, c.tokenNoTLS = token, true, false }
}

// WithInsecureBearerToken is WithBearerToken that also sends the token over a
// plaintext connection. Only for connections that cannot be observed, such as loopback.
func WithInsecureBearerToken(token string) Option {
	return func(c *dialConfig) { c.token, c.tokenSet, c.tokenNoTLS = token, true, true }
}

// WithDialOptions appends raw grpc.DialOptions (interceptors, keepalive, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.dialOptions = append(c.dialOptions, opts...) }
}

// Dial creates a client for the server at target: "host:port", any gRPC target
// ("dns:///host:port", "unix:///path"), or a URL "http://host:port" (plaintext)
// or "https://host:port" (TLS with the system's roots unless WithTLS is given).
// Without a TLS option the connection is plaintext. Dial does not wait for the
// connection: the first call does.
func Dial(target string, opts ...Option) (*Client, error) {
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case strings.HasPrefix(target, "http://"):
		target = strings.TrimSuffix(strings.TrimPrefix(target, "http://"), "/")
	case strings.HasPrefix(target, "https://"):
		target = strings.TrimSuffix(strings.TrimPrefix(target, "https://"), "/")
		if cfg.creds == nil {
			cfg.creds = credentials.NewTLS(&tls.Config{})
		}
	}
	if target == "" {
		return nil, errors.New("wfm: empty target")
	}
	creds := cfg.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// No receive limit of the client's own (gRPC's default is 4 MiB): the server bounds
		// what it sends by its limits.max_message_bytes, which may be set above 4 MiB.
		// WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(n))) sets one.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	}
	if cfg.tokenSet {
		if cfg.token == "" {
			return nil, errors.New("wfm: empty bearer token")
		}
		if !cfg.tokenNoTLS && creds.Info().SecurityProtocol == "insecure" {
			return nil, errors.New("wfm: WithBearerToken needs TLS (WithTLS or an https:// target); " +
				"to send the token over a plaintext connection you trust, such as loopback, use WithInsecureBearerToken")
		}
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearerToken{token: cfg.token, requireTLS: !cfg.tokenNoTLS}))
	}
	dopts = append(dopts, cfg.dialOptions...)
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("wfm: dial %s: %w", target, err)
	}
	return &Client{conn: conn, stub: workflowv1.NewWorkflowServiceClient(conn)}, nil
}

// NewClient wraps an existing connection; Close then does nothing (close the connection yourself).
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{stub: workflowv1.NewWorkflowServiceClient(conn)}
}

// Close closes the connection opened by Dial.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Stub returns the generated gRPC stub, for fields this package does not expose.
func (c *Client) Stub() workflowv1.WorkflowServiceClient { return c.stub }

// Conn returns the underlying connection (nil when built by NewClient).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// bearerToken is per-RPC credentials sending "authorization: Bearer <token>".
type bearerToken struct {
	token      string
	requireTLS bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.requireTLS }
