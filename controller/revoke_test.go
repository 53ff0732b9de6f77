package controller_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Revocation was checked only when a call started: a watch opened before deckctl
// credentials revoke kept streaming.
func TestRevokingACredentialEndsItsOpenStreams(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A viewer credential, used against replica 0 only.
	keyPEM, csr, err := pki.NewKeyAndCSR("watcher")
	if err != nil {
		t.Fatal(err)
	}
	created, err := apiv1.NewCredentialServiceClient(c.Client()).CreateCredential(ctx, &apiv1.CreateCredentialRequest{
		Name: "watcher", Role: pki.RoleViewer, Ttl: durationpb.New(time.Hour), CsrPem: csr})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := clientconfig.New(nil, created.GetCaPem(), created.GetCertificatePem(), keyPEM).TLS()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+c.Controllers[0].Addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	// A running task to watch.
	rec, _ := proto.Marshal(&apiv1.TaskRecord{Task: &taskv1.Task{Id: "t1", Node: "n1"}, State: taskv1.TaskState_TASK_STATE_RUNNING})
	if _, err := c.Controllers[0].Store().Txn(ctx, store.Txn{Then: []store.Op{store.Put(tasks.Prefix+"t1", rec)}}); err != nil {
		t.Fatal(err)
	}
	var stream apiv1.TaskService_WatchTaskClient
	testcluster.WaitFor(t, 15*time.Second, func() error { // replica 0 has the record and the credential
		stream, err = apiv1.NewTaskServiceClient(cc).WatchTask(ctx, &apiv1.WatchTaskRequest{Id: "t1"})
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	})
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()

	// Revoked by an admin through another replica.
	if _, err := apiv1.NewCredentialServiceClient(c.ClientTo(1)).RevokeCredential(ctx, &apiv1.RevokeCredentialRequest{NameOrSerial: "watcher"}); err != nil {
		t.Fatal(err)
	}
	var got error
	testcluster.WaitFor(t, 10*time.Second, func() error {
		select {
		case got = <-ended:
			return nil
		default:
			return errors.New("the watch of a revoked credential is still open")
		}
	})
	if status.Code(got) != codes.Unauthenticated || !strings.Contains(got.Error(), "revoked") || !strings.Contains(got.Error(), "watcher") {
		t.Fatalf("the watch ended with %v; want Unauthenticated saying the credential watcher was revoked", got)
	}
	// And it cannot open another one.
	s, err := apiv1.NewTaskServiceClient(cc).WatchTask(ctx, &apiv1.WatchTaskRequest{Id: "t1"})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a new watch with the revoked credential: %v", err)
	}
}
