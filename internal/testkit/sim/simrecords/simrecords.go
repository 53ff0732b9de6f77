package simrecords

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The commands a record names.
const (
	KubeadmInit       = "kubeadm-init"        // subject: the node initialized
	KubeadmJoin       = "kubeadm-join"        // subject: the node joined
	KubeadmReset      = "kubeadm-reset"       // subject: the node reset ("" if it never joined)
	KubeadmUpgrade    = "kubeadm-upgrade"     // subject: the node upgraded (kubeadm upgrade apply or node)
	EtcdMemberRemove  = "etcd-member-remove"  // subject: the node whose etcd member left
	TokenCreate       = "token-create"        // subject: the token ID
	TokenDelete       = "token-delete"        // subject: the token ID
	UploadCerts       = "upload-certs"        // subject: the node that uploaded them (kubeadm init --upload-certs too)
	KubectlCordon     = "kubectl-cordon"      // subject: the node cordoned (by a drain of an uncordoned node too)
	KubectlUncordon   = "kubectl-uncordon"    // subject: the node uncordoned
	KubectlDrain      = "kubectl-drain"       // subject: the node drained
	KubectlDeleteNode = "kubectl-delete-node" // subject: the node deleted
	KubectlBindView   = "kubectl-bind-view"   // subject: the ClusterRoleBinding created
)

// Paths in the cluster directory.
const (
	RecordsFile = "records"
	TokensDir   = "tokens"              // one file per bootstrap token, named by its ID
	NodesDir    = "nodes"               // one file per node, holding its role
	EtcdDir     = "etcd"                // one file per stacked etcd member, named by its node
	RootsDir    = "noderoots"           // one file per node, holding its simulated host root
	BindingsDir = "clusterrolebindings" // one file per ClusterRoleBinding: "ROLE USER"
)

// Record is one effect of a simulated command.
type Record struct {
	Time    time.Time
	Command string
	Subject string
}

func (r Record) String() string {
	return r.Time.UTC().Format(time.RFC3339Nano) + "\t" + r.Command + "\t" + r.Subject
}

// Append adds a record to clusterDir/records in one O_APPEND write, so that concurrent
// simulated commands never interleave their lines. The simulation calls it; tests have no
// reason to.
func Append(clusterDir, command, subject string) error {
	if strings.ContainsAny(command+subject, "\t\n") {
		return fmt.Errorf("record %q %q: a tab or newline would break the line format", command, subject)
	}
	f, err := os.OpenFile(filepath.Join(clusterDir, RecordsFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("record %s %s: %w", command, subject, err)
	}
	_, werr := f.Write([]byte(Record{Time: time.Now(), Command: command, Subject: subject}.String() + "\n"))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("record %s %s: %w", command, subject, werr)
	}
	return nil
}

// Read returns the records of the simulated cluster in clusterDir, oldest first; none if
// nothing was recorded yet.
func Read(clusterDir string) ([]Record, error) {
	f, err := os.Open(filepath.Join(clusterDir, RecordsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s line %d: %q is not <time>\\t<command>\\t<subject>", f.Name(), n, sc.Text())
		}
		t, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", f.Name(), n, err)
		}
		out = append(out, Record{Time: t, Command: parts[1], Subject: parts[2]})
	}
	return out, sc.Err()
}

// Count is how many records name command and subject.
func Count(recs []Record, command, subject string) int {
	n := 0
	for _, r := range recs {
		if r.Command == command && r.Subject == subject {
			n++
		}
	}
	return n
}

// Tokens are the IDs of the bootstrap tokens that exist now (expired ones included: the
// simulation, like the API server, keeps them until deleted), sorted.
func Tokens(clusterDir string) ([]string, error) {
	return names(filepath.Join(clusterDir, TokensDir))
}

// TokenExpires is when the bootstrap token with the ID id expires.
func TokenExpires(clusterDir, id string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(clusterDir, TokensDir, id))
	if err != nil {
		return time.Time{}, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return time.Time{}, fmt.Errorf("token %s: its file does not hold \"<token> <expiry>\"", id)
	}
	return time.Parse(time.RFC3339, f[1])
}

// Nodes maps each node that exists now to its role ("control-plane" or "worker").
func Nodes(clusterDir string) (map[string]string, error) {
	dir := filepath.Join(clusterDir, NodesDir)
	list, err := names(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(list))
	for _, n := range list {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out[n] = strings.TrimSpace(string(b))
	}
	return out, nil
}

// EtcdMembers are the nodes whose stacked etcd member is in the cluster now, sorted.
func EtcdMembers(clusterDir string) ([]string, error) {
	return names(filepath.Join(clusterDir, EtcdDir))
}

func names(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
