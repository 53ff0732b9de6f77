package controller

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
)

// adminConfRecordRetry is how often recording admin.conf as a credential is retried while
// there is no admin.conf yet or no quorum.
const adminConfRecordRetry = 2 * time.Second

// recordAdminConfLoop lists this replica's admin.conf among the credentials (as
// admin.conf-REPLICA), so a copy that leaked can be revoked with deckctl credentials revoke
// like any other credential. It retries until the record exists.
func (c *Controller) recordAdminConfLoop(ctx context.Context) {
	path := filepath.Join(c.cfg.DataDir, "admin.conf")
	for {
		err := c.recordAdminConf(ctx, path)
		if err == nil {
			return
		}
		c.cfg.Logger.Debug("recording admin.conf as a credential; will retry", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(adminConfRecordRetry):
		}
	}
}

func (c *Controller) recordAdminConf(ctx context.Context, path string) error {
	cfg, err := clientconfig.Load(path)
	if err != nil {
		return err
	}
	cert, err := pki.ParseCert([]byte(cfg.Certificate))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	id, err := pki.IdentityOf(cert)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return c.credentials.Record(ctx, "admin.conf-"+c.id, id.Role, cert, "deckhand-controller "+c.id)
}
