package collector

import (
	"context"

	"github.com/vigil-tsdb/vigil/model"
)

// Sink takes scraped samples. Push returns once the batch is accepted
// (stored or durably spooled). Implementations say whether they keep
// references to batch after Push returns.
type Sink interface {
	Push(ctx context.Context, batch []model.Series) (model.PushResult, error)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, batch []model.Series) (model.PushResult, error)

// Push calls f.
func (f SinkFunc) Push(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	return f(ctx, batch)
}
