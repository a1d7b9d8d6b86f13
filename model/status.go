package model

// TSDBStatus is the cardinality report behind /api/v1/status/tsdb. Field
// names follow Prometheus' JSON so that its UI and Grafana read it unchanged.
type TSDBStatus struct {
	NumSeries                   uint64      `json:"numSeries"`
	MinTime                     int64       `json:"minTime"`
	MaxTime                     int64       `json:"maxTime"`
	NumLabelPairs               uint64      `json:"numLabelPairs"`
	SeriesCountByMetricName     []NameCount `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []NameCount `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []NameCount `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []NameCount `json:"seriesCountByLabelValuePair"`
}

// NameCount is one row of a TSDBStatus top-N list.
type NameCount struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}
