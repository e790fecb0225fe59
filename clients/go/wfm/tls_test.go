package wfm_test

// The client over TLS with bearer tokens, against a real `wfm serve` with auth and TLS
// on. The certificates (a throwaway CA and a server certificate for 127.0.0.1) are made
// here with crypto/x509; the tokens come from `wfm token create`.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wfm-dev/wfm/clients/go/wfm"
)

// testPKI writes a CA and a server certificate signed by it into dir; returns the CA pool.
func testPKI(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wfm test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, kind string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("server.pem", "CERTIFICATE", leafDER)
	write("server.key", "PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}

// createToken runs `wfm token create` and returns the token and its tokens-file line.
func createToken(t *testing.T, role string) (token, line string) {
	t.Helper()
	bin, err := wfmBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "token", "create", "--role", role, "--id", role).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("unexpected `wfm token create` output %q", out)
	}
	return lines[0], lines[1]
}

func TestTLSAndTokens(t *testing.T) {
	dir := t.TempDir()
	pool := testPKI(t, dir)
	admin, adminLine := createToken(t, "admin")
	reader, readerLine := createToken(t, "reader")
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(adminLine+"\n"+readerLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "wfm.toml")
	body := fmt.Sprintf("store = \"memory\"\n[auth]\ntokens_file = %q\n[tls]\ncert = %q\nkey = %q\n",
		tokens, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := startServerArgs(t.TempDir(), []string{"--config", config})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.Stderr())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(opts ...wfm.Option) *wfm.Client {
		c, err := wfm.Dial(s.Addr, append([]wfm.Option{wfm.WithTLS(&tls.Config{RootCAs: pool})}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	t.Run("no token is UNAUTHENTICATED", func(t *testing.T) {
		_, err := dial().ListAll(ctx, wfm.ListOptions{})
		if !wfm.IsUnauthenticated(err) || !strings.Contains(err.Error(), "missing bearer token") {
			t.Fatalf("want UNAUTHENTICATED, got %v", err)
		}
	})
	t.Run("a wrong token is UNAUTHENTICATED", func(t *testing.T) {
		_, err := dial(wfm.WithBearerToken("wfm_not-a-real-token")).ListAll(ctx, wfm.ListOptions{})
		if !wfm.IsUnauthenticated(err) {
			t.Fatalf("want UNAUTHENTICATED, got %v", err)
		}
	})
	t.Run("a reader lists but may not register", func(t *testing.T) {
		c := dial(wfm.WithBearerToken(reader))
		if _, err := c.ListAll(ctx, wfm.ListOptions{}); err != nil {
			t.Fatalf("List as reader: %v", err)
		}
		_, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "go-tls-denied", Type: "echo"})
		if !wfm.IsPermissionDenied(err) || !strings.Contains(err.Error(), "Register needs the admin role") {
			t.Fatalf("want PERMISSION_DENIED, got %v", err)
		}
	})
	t.Run("an admin registers and executes over TLS", func(t *testing.T) {
		c := dial(wfm.WithBearerToken(admin))
		wf, created, err := c.Register(ctx, wfm.RegisterOptions{Name: "go-tls-echo", Type: "echo"})
		if err != nil || !created || wf.Name != "go-tls-echo" {
			t.Fatalf("Register as admin: %v %v %v", wf, created, err)
		}
		res, err := c.Run(ctx, "go-tls-echo", wfm.ExecuteOptions{Input: map[string]any{"over": "tls"}})
		if err != nil || !res.Success {
			t.Fatalf("Run as admin: %+v %v", res, err)
		}
		if out, ok := res.Output.(map[string]any); !ok || out["over"] != "tls" {
			t.Fatalf("output %v", res.Output)
		}
	})
	t.Run("plaintext is refused", func(t *testing.T) {
		c, err := wfm.Dial(s.Addr, wfm.WithInsecureBearerToken(admin))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		short, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := c.ListAll(short, wfm.ListOptions{}); err == nil {
			t.Fatal("a plaintext client was served by a TLS server")
		}
	})
}
