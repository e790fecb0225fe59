package wfm_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wfm-dev/wfm/clients/go/wfm"
)

// A real `wfm serve` process on a free loopback port with its own data dir.
type server struct {
	Addr    string
	DataDir string

	cmd     *exec.Cmd
	stderr  *syncBuffer
	done    chan struct{}
	waitErr error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wfmBinary is $WFM_BIN, or <repo root>/target/release/wfm.
func wfmBinary() (string, error) {
	if b := os.Getenv("WFM_BIN"); b != "" {
		return b, nil
	}
	root, err := filepath.Abs(filepath.Join("..", "..", "..")) // clients/go/wfm -> repo root
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "target", "release", "wfm")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("wfm binary not found at %s (build it with `cargo build --release` or set WFM_BIN): %w", bin, err)
	}
	return bin, nil
}

// serverEnviron is this process's environment without WFM_BIN: the server reads
// every WFM_* variable as configuration and refuses to start on one it does not
// know ("unknown field: found `bin`"), so the variable that points the tests at
// the binary must not reach it.
func serverEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WFM_BIN=") {
			env = append(env, kv)
		}
	}
	return env
}

// startServer starts `wfm serve --listen 127.0.0.1:0 --data-dir <dataDir>` with
// extra environment variables and waits for its "wfm listening on" line.
func startServer(dataDir string, env ...string) (*server, error) {
	return startServerArgs(dataDir, nil, env...)
}

// startServerArgs is startServer with extra arguments to `wfm serve` (e.g. --config).
func startServerArgs(dataDir string, args []string, env ...string) (*server, error) {
	bin, err := wfmBinary()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	cmd.Env = append(serverEnviron(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &server{DataDir: dataDir, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "wfm listening on ")
		if !ok {
			s.Kill()
			return nil, fmt.Errorf("unexpected first stdout line %q; stderr:\n%s", line, s.stderr)
		}
		s.Addr = addr
		return s, nil
	case <-time.After(30 * time.Second):
		s.Kill()
		return nil, fmt.Errorf("wfm serve did not print its address within 30s; stderr:\n%s", s.stderr)
	}
}

// startTestServer starts a server for one test; it is killed at the end of the test.
func startTestServer(t *testing.T, env ...string) *server {
	t.Helper()
	s, err := startServer(t.TempDir(), env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.stderr)
		}
	})
	return s
}

// WaitExit waits for the process to exit and returns its exit code.
func (s *server) WaitExit(timeout time.Duration) (int, error) {
	select {
	case <-s.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("server did not exit within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(s.waitErr, &ee) {
		return ee.ExitCode(), nil
	}
	if s.waitErr != nil {
		return -1, s.waitErr
	}
	return 0, nil
}

// Kill stops the process if it still runs.
func (s *server) Kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

func (s *server) Stderr() string { return s.stderr.String() }

// Shared server of the suite, with a 1000-byte input limit.
var (
	shared       *server
	sharedClient *wfm.Client
)

const maxInputBytes = 1000

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wfm-go-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	shared, err = startServer(dir, fmt.Sprintf("WFM_LIMITS__MAX_INPUT_BYTES=%d", maxInputBytes))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the wfm server:", err)
		return 1
	}
	defer shared.Kill()
	sharedClient, err = wfm.Dial(shared.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sharedClient.Close()

	code := m.Run()

	// Stop the shared server the way an operator would, and insist on a clean exit.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := sharedClient.Shutdown(ctx, wfm.WithGracePeriod(2*time.Second)); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown of the shared server:", err)
		code = 1
	} else if exit, err := shared.WaitExit(30 * time.Second); err != nil || exit != 0 {
		fmt.Fprintf(os.Stderr, "shared server exit: code %d, %v\n", exit, err)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "shared server stderr:\n%s\n", shared.Stderr())
	}
	return code
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName returns a workflow name that no other test uses.
func uniqueName(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}
