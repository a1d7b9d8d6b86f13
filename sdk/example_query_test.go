package sdk_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/vigil-tsdb/vigil/sdk"
)

// Evaluate PromQL at one time and read the instant vector it returns.
func ExampleClient_Query() {
	c, err := sdk.New(vigilAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	now := time.Now()
	if _, err := c.Write(ctx, []sdk.Series{
		{Labels: sdk.Labels("__name__", "example_orders_total", "shop", "north"), Samples: []sdk.Sample{{T: now.UnixMilli(), V: 3}}},
		{Labels: sdk.Labels("__name__", "example_orders_total", "shop", "south"), Samples: []sdk.Sample{{T: now.UnixMilli(), V: 4}}},
	}); err != nil {
		log.Fatal(err)
	}
	res, err := c.Query(ctx, `sum(example_orders_total)`, now)
	if err != nil {
		log.Fatal(err)
	}
	switch v := res.Value.(type) {
	case sdk.Vector:
		for _, s := range v {
			fmt.Println("orders:", s.V)
		}
	default:
		fmt.Println("unexpected", v.Type())
	}
	// Output: orders: 7
}

// Evaluate PromQL over a range of time: a Matrix, one series per label
// set, with a sample per step.
func ExampleClient_QueryRange() {
	c, err := sdk.New(vigilAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	var smps []sdk.Sample
	for i := range 10 {
		smps = append(smps, sdk.Sample{T: start.Add(time.Duration(i) * time.Minute).UnixMilli(), V: float64(i)})
	}
	if _, err := c.Write(ctx, []sdk.Series{{Labels: sdk.Labels("__name__", "example_queue_depth"), Samples: smps}}); err != nil {
		log.Fatal(err)
	}
	res, err := c.QueryRange(ctx, `example_queue_depth * 2`, start, start.Add(9*time.Minute), 3*time.Minute,
		sdk.WithResolution(sdk.ResolutionRaw), sdk.WithTimeout(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range res.Value.(sdk.Matrix) {
		for _, p := range s.Samples {
			fmt.Printf("+%dm: %v\n", (p.T-start.UnixMilli())/60_000, p.V)
		}
	}
	// Output:
	// +0m: 0
	// +3m: 6
	// +6m: 12
	// +9m: 18
}

// List the values of a label among the series a selector matches.
func ExampleClient_LabelValues() {
	c, err := sdk.New(vigilAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	now := time.Now().UnixMilli()
	if _, err := c.Write(ctx, []sdk.Series{
		{Labels: sdk.Labels("__name__", "example_disk_free_bytes", "mount", "/"), Samples: []sdk.Sample{{T: now, V: 1e9}}},
		{Labels: sdk.Labels("__name__", "example_disk_free_bytes", "mount", "/home"), Samples: []sdk.Sample{{T: now, V: 5e9}}},
	}); err != nil {
		log.Fatal(err)
	}
	res, err := c.LabelValues(ctx, "mount", []string{"example_disk_free_bytes"}, time.Time{}, time.Time{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Values)
	// Output: [/ /home]
}
