package dashboard_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/dashboard"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

const kubernetesVersion = "v1.33.13"

// A real browser drives the dashboard against a simulated cluster (a real controller and
// real agents; kubeadm and the kubelet are the hostsim SIMULATION): the nodes page lists
// the nodes, a join started from the page runs while its timeline shows each step live
// until it succeeded, and the audit page lists the CreateWorkflow call with the admin's
// name. The token leaves the address bar for the tab's sessionStorage, so a reload still
// works. Screenshots go to $DECKHAND_ARTIFACTS (default: a temporary directory).
func TestDashboardInABrowser(t *testing.T) {
	chromium := findChromium(t)
	artifacts := artifactDir(t)

	// A cluster with node-1 as its control plane and node-2 enrolled beside it.
	testcluster.SimCluster(t)
	c := testcluster.New(t, 1)
	mirror := testcluster.Mirror(t, kubernetesVersion, 4<<10, 1)
	repo := testcluster.PackageRepo(t, "v1.33")
	c.StartHosts("node-1", "node-2")
	initID := strings.TrimSpace(deckctl(t, c, "init", "node-1", "--kubernetes-version", kubernetesVersion, "--mirror", mirror, "--package-base-url", repo, "--cgroup-driver", "cgroupfs", "--detach"))
	testcluster.WaitFor(t, time.Minute, func() error {
		wf, err := c.Workflow(initID)
		if err != nil {
			return err
		}
		switch wf.GetState() {
		case apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED:
			return nil
		case apiv1.WorkflowState_WORKFLOW_STATE_FAILED, apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED:
			t.Fatalf("init node-1: %s at %s: %s", wf.GetState(), wf.GetFailedStep(), wf.GetError().GetMessage())
		}
		return fmt.Errorf("init %s is %s", initID, wf.GetState())
	})
	// node-2's kubeadm join takes 3 s, so the timeline is seen while it runs.
	testcluster.WriteFile(t, c.Agents["node-2"].Root, "var/lib/deckhand-sim/kubeadm-join-delay", "3s", 0o644)

	// The dashboard, as deckctl dashboard runs it with the admin's credential file.
	admin := c.AdminTLS()
	tlsCfg, err := admin.TLS()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCert([]byte(admin.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	subject := cert.Subject.CommonName
	cfg := dashboard.DefaultConfig()
	cfg.Controllers, cfg.TLS, cfg.Subject, cfg.Role = c.Addrs(), tlsCfg, subject, pki.RoleAdmin
	cfg.Logger = testcluster.Logger()
	s, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopDashboard := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Run(runCtx) }()
	defer func() {
		stopDashboard()
		if err := <-served; err != nil {
			t.Errorf("dashboard: %v", err)
		}
	}()

	ctx, console := startBrowser(t, chromium)
	b := &page{t: t, ctx: ctx, artifacts: artifacts}

	// The nodes page: both nodes, node-1 a control plane.
	b.do("open the printed URL", 30*time.Second, chromedp.Navigate(s.URL()))
	b.do("the nodes page lists node-1 and node-2", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node-row"][data-node="node-1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node-row"][data-node="node-2"]`)))
	if loc := b.text("location", chromedp.Evaluate[string](`location.href`)); strings.Contains(loc, "token=") {
		t.Errorf("the page kept the token in its URL: %s", loc)
	}
	// The token lives in the tab's sessionStorage, not in a cookie: a reload still works.
	token := s.URL()[strings.Index(s.URL(), "token=")+len("token="):]
	if kept := b.text("sessionStorage", chromedp.Evaluate[string](`sessionStorage.getItem('deckhand-dashboard-token') || ''`)); kept != token {
		t.Errorf("sessionStorage holds %q, want the printed token", kept)
	}
	b.do("reload the page: it works from sessionStorage", 30*time.Second,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node-row"][data-node="node-2"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="who"]').textContent !== ''`, chromedp.WithPollingTimeout(10*time.Second)))
	if loc := b.text("location after the reload", chromedp.Evaluate[string](`location.href`)); strings.Contains(loc, "token=") {
		t.Errorf("the token came back into the URL: %s", loc)
	}
	if row := b.text("node-1's row", chromedp.Text(chromedp.CSS(`[data-node="node-1"]`))); !strings.Contains(row, "control-plane") || !strings.Contains(row, "Ready") {
		t.Errorf("node-1's row: %q", row)
	}
	b.screenshot("nodes")

	// Join node-2: the dialog asks which node, shows the controller's plan, then creates.
	b.do("open the join dialog with its plan", 30*time.Second,
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="join-button"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="join-button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="join-node"]`), "node-2"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan"]`)),
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="confirm-ok"]`)))
	if plan := b.text("the plan", chromedp.Text(chromedp.CSS(`[data-testid="plan"]`))); !strings.Contains(plan, "node-2") {
		t.Errorf("the plan does not name node-2: %q", plan)
	}
	if ok := b.text("the confirm button", chromedp.Text(chromedp.CSS(`[data-testid="confirm-ok"]`))); ok != "Join node-2" {
		t.Errorf("the confirm button says %q", ok)
	}
	b.screenshot("join-plan")
	b.do("confirm the join", 30*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-ok"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="timeline"] [data-testid="lane"][data-lane="node-2"]`)))
	id := strings.TrimPrefix(b.text("the workflow's URL", chromedp.Evaluate[string](`location.hash`)), "#/workflows/")
	if !strings.HasPrefix(id, "wf-") {
		t.Fatalf("after the join the page is at %q, not a workflow", id)
	}

	// The timeline while the join runs, then when it succeeded; the logs came along.
	b.do("the join step runs", 60*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step"][data-step="node-2/join"][data-state="running"]`)))
	b.screenshot("timeline-live")
	b.do("the workflow succeeds", 90*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="workflow-state"].succeeded`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step"][data-step="node-2/ready"][data-state="succeeded"]`)))
	b.do("node-2's log lines show", 10*time.Second,
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('[data-testid="log-pane"] .line').length > 0`, chromedp.WithPollingTimeout(10*time.Second)))
	b.screenshot("timeline")
	wf, err := c.Workflow(id)
	if err != nil || wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED || wf.GetSpec().GetJoin().GetNode() != "node-2" || wf.GetCreatedBy() != subject {
		t.Fatalf("the workflow the page made: %v %v", wf, err)
	}
	if steps := b.text("steps shown", chromedp.Evaluate[string](`String(document.querySelectorAll('[data-testid="step"]').length)`)); steps != strconv.Itoa(len(wf.GetSteps())) {
		t.Errorf("the timeline shows %s steps of %d", steps, len(wf.GetSteps()))
	}

	// The cluster page has node-2 now.
	b.do("the cluster page lists node-2", 30*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="nav-cluster"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="cluster-node"][data-node="node-2"]`)))
	b.screenshot("cluster")

	// The audit page lists the join's CreateWorkflow call, made by the admin over REST.
	row := fmt.Sprintf(`[data-testid="audit-row"][data-method="CreateWorkflow"][data-subject=%q][data-code="OK"]`, subject)
	b.do("the audit page lists the CreateWorkflow call", 30*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="nav-audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(row)))
	if text := b.text("the audit row", chromedp.Text(chromedp.CSS(row))); !strings.Contains(text, "rest") || !strings.Contains(text, "node-2") {
		t.Errorf("the CreateWorkflow row: %q", text)
	}
	b.screenshot("audit")

	if msgs := console(); len(msgs) > 0 {
		t.Errorf("the page wrote errors or warnings to the console:\n%s", strings.Join(msgs, "\n"))
	}
}

// deckctl runs the CLI in process against the cluster.
func deckctl(t *testing.T, c *testcluster.Cluster, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRoot(&out, &errOut)
	root.SetArgs(append([]string{"--config", c.AdminConfig(), "--controller", strings.Join(c.Addrs(), ","), "--timeout", "60s"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("deckctl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// findChromium is the browser's path. Without one the test skips, unless
// DECKHAND_REQUIRE_BROWSER=1 (CI) makes it fail.
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("DECKHAND_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH and DECKHAND_REQUIRE_BROWSER=1: apt-get install chromium")
	}
	t.Skip("no chromium on PATH (apt-get install chromium; DECKHAND_REQUIRE_BROWSER=1 makes this a failure)")
	return ""
}

// artifactDir is where the screenshots go: $DECKHAND_ARTIFACTS, else a temporary directory.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("DECKHAND_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBrowser starts a headless Chromium with a user data directory of its own; when
// the test ends, the browser and every process it started are gone (checked). console
// returns the errors and warnings the page wrote so far.
func startBrowser(t *testing.T, path string) (ctx context.Context, console func() []string) {
	t.Helper()
	dataDir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dataDir),
		chromedp.WindowSize(1440, 900),
		// Chromium keeps a singleton socket directory in TMPDIR for its whole life and leaves it
		// behind: in the test's own directory, removed with it.
		chromedp.Env("TMPDIR="+t.TempDir()),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	var mu sync.Mutex
	var msgs []string
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				msgs = append(msgs, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
		// Chromium's helpers (zygote, renderers, the GPU and network processes) carry the
		// user data directory in their command line: none may outlive the test.
		deadline := time.Now().Add(10 * time.Second)
		for {
			pids := processesUsing(dataDir)
			if len(pids) == 0 {
				return
			}
			if time.Now().After(deadline) {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				t.Errorf("chromium processes %v outlived the test", pids)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), msgs...)
	}
}

// processesUsing lists the processes whose command line has --user-data-dir=dir.
func processesUsing(dir string) []int {
	want := []byte("--user-data-dir=" + dir)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// page drives the browser's tab; a step that fails saves a screenshot of the page.
type page struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
}

func (p *page) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.screenshot("failed")
		p.t.Fatalf("%s: %v (within %v)", what, err, timeout)
	}
}

func (p *page) text(what string, a chromedp.Action[string]) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("read %s: %v", what, err)
	}
	return strings.TrimSpace(s)
}

// screenshot saves the whole page as NAME.png among the artifacts.
func (p *page) screenshot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(p.artifacts, "dashboard-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p.t.Logf("screenshot: %s", file)
}

// The page says which URL to open when it has no token or another run's; it shows a
// controller's refusal with its message and reason, keeps the dialog open and its confirm
// button disabled; another local server's page cannot reach the API; a failed workflow
// shows why and is retried after a confirmation. Against a stand-in controller, so each
// answer is the one the test needs.
func TestDashboardShowsErrorsAndRetries(t *testing.T) {
	chromium := findChromium(t)
	artifacts := artifactDir(t)
	jsonAnswer := func(code int, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}
	}
	const failed = `{"id":"wf-f","spec":{"join":{"node":"w-1"}},"state":"WORKFLOW_STATE_FAILED","failedStep":"w-1/preflight",` +
		`"error":{"reason":"PORT_IN_USE","message":"port 10250 is in use by kubelet-old","hint":"stop it: systemctl stop kubelet-old"},` +
		`"created":"2026-12-01T09:00:00Z","updated":"2026-12-01T09:00:05Z","createdBy":"alice","nodes":["w-1"],` +
		`"steps":[{"name":"w-1/preflight","node":"w-1","lane":"w-1","state":"STEP_STATE_FAILED","attempts":3,"maxAttempts":3,"taskId":"wf-f.w-1.preflight.3",` +
		`"started":"2026-12-01T09:00:01Z","finished":"2026-12-01T09:00:05Z","error":{"message":"port 10250 is in use by kubelet-old"}},` +
		`{"name":"w-1/join","node":"w-1","lane":"w-1","state":"STEP_STATE_PENDING"}]}`
	f := startWith(t, one, nil, routes{
		"GET /v1/nodes": jsonAnswer(200, `{"nodes":[{"name":"cp-1","state":"NODE_STATE_READY","clusterRole":"control-plane"},{"name":"w-1","state":"NODE_STATE_NOT_READY"}]}`),
		"POST /v1/workflows:plan": jsonAnswer(412, `{"code":9,"message":"node w-1 is held by workflow wf-other: wait for it or cancel it",`+
			`"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"ERROR_REASON_NODE_LOCKED","domain":"deckhand.dev"}]}`),
		"GET /v1/workflows/wf-f:watch": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprintln(w, `{"result":{"event":{"taskId":"wf-f.w-1.preflight.3","time":"2026-12-01T09:00:04Z","log":{"stream":"stderr","text":"port 10250: bind: address already in use"}}}}`)
			fmt.Fprintln(w, `{"result":{"workflow":`+failed+`}}`)
		},
		"POST /v1/workflows/wf-f:retry": jsonAnswer(200, `{"workflow":`+strings.Replace(failed, "WORKFLOW_STATE_FAILED", "WORKFLOW_STATE_RUNNING", 1)+`}`),
	})
	ctx, _ := startBrowser(t, chromium)
	b := &page{t: t, ctx: ctx, artifacts: artifacts}

	// Without the token (a new tab, the bare address) or with another run's, the page says
	// which URL to open.
	for _, c := range []struct{ url, want string }{
		{f.base + "/", "open the URL deckctl dashboard printed (" + f.base + "/?token=...)"},
		{f.base + "/?token=AAAAAAAAAAAAAAAAAAAAAAAAAA", "open the URL it printed last"},
	} {
		b.do("open "+c.url, 10*time.Second,
			chromedp.Navigate(c.url),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="error"]`)))
		if msg := b.text("the banner", chromedp.Text(chromedp.CSS(`[data-testid="error"]`))); !strings.Contains(msg, c.want) {
			t.Errorf("%s: the page says %q, want %q", c.url, msg, c.want)
		}
	}
	b.screenshot("no-token")

	b.do("the join dialog shows the refusal", 30*time.Second,
		chromedp.Navigate(f.s.URL()),
		// Enabled once the node list arrived (a click before would find no node to join).
		chromedp.WaitEnabled(chromedp.CSS(`[data-testid="join-button"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="join-button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="dialog-error"]`)))
	if msg := b.text("the dialog's error", chromedp.Text(chromedp.CSS(`[data-testid="dialog-error"]`))); !strings.Contains(msg, "held by workflow wf-other") || !strings.Contains(msg, "NODE_LOCKED") {
		t.Errorf("the dialog says %q", msg)
	}
	if disabled := b.text("the confirm button", chromedp.Evaluate[string](`String(document.querySelector('[data-testid="confirm-ok"]').disabled)`)); disabled != "true" {
		t.Error("the join can be confirmed without a plan")
	}
	b.screenshot("error-dialog")
	b.do("cancel the dialog", 10*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-cancel"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)))

	// Another server on 127.0.0.1 (another port: the browser would send it any cookie of
	// 127.0.0.1), whose page this tab opens next, gets no cookie and cannot reach the
	// dashboard's API: its requests carry its own Origin and no token, a custom header needs
	// a preflight that is refused, and the dashboard's sessionStorage is not its own.
	var cookiesMu sync.Mutex
	var cookies []string // what the browser sent the other server
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookiesMu.Lock()
		cookies = append(cookies, r.Header.Values("Cookie")...)
		cookiesMu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>other</title><script>
const d = %q;
const show = (r) => r.status === 'fulfilled' ? r.value.type + ':' + r.value.status : 'failed';
Promise.allSettled([
  fetch(d + '/v1/other-read', { credentials: 'include' }),
  fetch(d + '/v1/other-write', { method: 'POST', credentials: 'include', body: '{}' }),
  fetch(d + '/v1/other-marked', { credentials: 'include', headers: { 'X-Deckhand-Dashboard': '1' } }),
  fetch(d + '/v1/other-blind', { mode: 'no-cors', credentials: 'include' }),
]).then((rs) => { document.title = 'done ' + rs.map(show).join(' ') + ' token:' + (sessionStorage.getItem('deckhand-dashboard-token') || 'none'); });
</script>`, f.base)
	}))
	defer other.Close()
	b.do("another local server's page tries the API", 10*time.Second,
		chromedp.Navigate(other.URL),
		chromedp.Poll[chromedp.Void](`document.title.startsWith('done')`, chromedp.WithPollingTimeout(10*time.Second)))
	// Even the blind (no-cors) read fails: Cross-Origin-Resource-Policy withholds the answer.
	if got := b.text("what it got", chromedp.Evaluate[string](`document.title`)); got != "done failed failed failed failed token:none" {
		t.Errorf("another origin's page got %q, want every call failed and no token", got)
	}
	cookiesMu.Lock()
	if len(cookies) > 0 {
		t.Errorf("the browser sent another server on 127.0.0.1 the cookies %q: the dashboard's session must not be one", cookies)
	}
	cookiesMu.Unlock()
	for _, r := range f.up.received() {
		if strings.Contains(r, "/v1/other-") {
			t.Errorf("another origin's call reached the controller: %s", r)
		}
	}

	// Back to the dashboard without the token in the URL: the tab's sessionStorage has it.
	b.do("the failed workflow shows why", 30*time.Second,
		chromedp.Navigate(f.base+"/#/workflows/wf-f"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="workflow-state"].failed`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step"][data-step="w-1/preflight"][data-state="failed"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="log-pane"]').textContent.includes('address already in use')`, chromedp.WithPollingTimeout(10*time.Second)))
	if why := b.text("the failure", chromedp.Text(chromedp.CSS(`[data-testid="workflow-error"]`))); !strings.Contains(why, "w-1/preflight failed") || !strings.Contains(why, "systemctl stop kubelet-old") {
		t.Errorf("the failure reads %q", why)
	}
	if cell := b.text("the failed step", chromedp.Text(chromedp.CSS(`[data-step="w-1/preflight"]`))); !strings.Contains(cell, "failed") || !strings.Contains(cell, "4.0s") {
		t.Errorf("the failed step reads %q", cell)
	}
	b.screenshot("failed")
	retries := func() int {
		n := 0
		for _, r := range f.up.received() {
			if r == "POST /v1/workflows/wf-f:retry {}" {
				n++
			}
		}
		return n
	}
	b.do("retry asks first", 10*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="retry-button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)))
	if n := retries(); n != 0 {
		t.Fatalf("retried %d times before the confirmation", n)
	}
	b.do("confirm the retry", 10*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-ok"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)))
	testcluster.WaitFor(t, 10*time.Second, func() error {
		if n := retries(); n != 1 {
			return fmt.Errorf("the controller got %d retries: %v", n, f.up.received())
		}
		return nil
	})
}
