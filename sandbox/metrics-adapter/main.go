// modeldr-metrics-adapter serves the custom metrics API (custom.metrics.k8s.io) of one
// member cluster from Prometheus, so that a HorizontalPodAutoscaler can scale the model
// server on its own load metric.
//
// Why not prometheus-adapter: its Go module is not served to this machine's module proxy.
// This is the same design on the same library (sigs.k8s.io/custom-metrics-apiserver):
// each metric is a PromQL template, evaluated for one namespace, answered per pod. On a
// real cluster, prometheus-adapter with the rule in docs/traffic.md does the same job.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/custom_metrics"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider/helpers"
)

// matchersPlaceholder is replaced in a metric's PromQL by the cluster's and namespace's
// label matchers; the query must keep `namespace` and `pod` labels on its result.
const matchersPlaceholder = "<<matchers>>"

var podsResource = schema.GroupResource{Resource: "pods"}

type promProvider struct {
	client     dynamic.Interface
	mapper     apimeta.RESTMapper
	prometheus string
	cluster    string
	metrics    map[string]string // metric name -> PromQL template
	http       *http.Client
}

type promResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// query evaluates the metric's template for one namespace: pod name -> value.
func (p *promProvider) query(ctx context.Context, metric, namespace string) (map[string]float64, error) {
	template, ok := p.metrics[metric]
	if !ok {
		return nil, provider.NewMetricNotFoundError(podsResource, metric)
	}
	matchers := fmt.Sprintf("cluster=%q,namespace=%q", p.cluster, namespace)
	expr := strings.ReplaceAll(template, matchersPlaceholder, matchers)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		p.prometheus+"/api/v1/query?"+url.Values{"query": {expr}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("Prometheus: %v", err))
	}
	defer resp.Body.Close()
	var body promResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("Prometheus query %q: %v %s", expr, err, body.Error))
	}
	values := map[string]float64{}
	for _, sample := range body.Data.Result {
		raw, _ := sample.Value[1].(string)
		value, err := strconv.ParseFloat(raw, 64)
		if err != nil || sample.Metric["pod"] == "" {
			continue // NaN or a series without a pod: nothing to answer for it
		}
		values[sample.Metric["pod"]] = value
	}
	return values, nil
}

func metricValue(mapper apimeta.RESTMapper, name types.NamespacedName, info provider.CustomMetricInfo, value float64) (custom_metrics.MetricValue, error) {
	ref, err := helpers.ReferenceFor(mapper, name, info)
	if err != nil {
		return custom_metrics.MetricValue{}, err
	}
	return custom_metrics.MetricValue{
		DescribedObject: ref,
		Metric:          custom_metrics.MetricIdentifier{Name: info.Metric},
		Timestamp:       metav1.Now(),
		// Milli-units: an average of 0.35 in-flight requests is 350m, not 0.
		Value: *resource.NewMilliQuantity(int64(value*1000), resource.DecimalSI),
	}, nil
}

func (p *promProvider) GetMetricByName(ctx context.Context, name types.NamespacedName, info provider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValue, error) {
	if info.GroupResource != podsResource {
		return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
	}
	values, err := p.query(ctx, info.Metric, name.Namespace)
	if err != nil {
		return nil, err
	}
	value, ok := values[name.Name]
	if !ok {
		return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
	}
	metric, err := metricValue(p.mapper, name, info, value)
	return &metric, err
}

func (p *promProvider) GetMetricBySelector(ctx context.Context, namespace string, selector labels.Selector, info provider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValueList, error) {
	if info.GroupResource != podsResource {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	names, err := helpers.ListObjectNames(p.mapper, p.client, namespace, selector, info)
	if err != nil {
		return nil, err
	}
	values, err := p.query(ctx, info.Metric, namespace)
	if err != nil {
		return nil, err
	}
	list := &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{}}
	for _, pod := range names {
		value, ok := values[pod]
		if !ok {
			continue // no series yet (a pod just started): the HPA treats it as missing
		}
		metric, err := metricValue(p.mapper, types.NamespacedName{Namespace: namespace, Name: pod}, info, value)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, metric)
	}
	return list, nil
}

func (p *promProvider) ListAllMetrics() []provider.CustomMetricInfo {
	infos := make([]provider.CustomMetricInfo, 0, len(p.metrics))
	for name := range p.metrics {
		infos = append(infos, provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: name})
	}
	return infos
}

type adapter struct {
	basecmd.AdapterBase
	prometheus string
	cluster    string
	metrics    []string
}

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()
	cmd := &adapter{}
	cmd.Name = "modeldr-metrics-adapter"
	flags := cmd.Flags()
	flags.StringVar(&cmd.prometheus, "prometheus-url", "http://127.0.0.1:9090", "Prometheus to query")
	flags.StringVar(&cmd.cluster, "cluster", "", "value of the `cluster` label of this member's series")
	flags.StringArrayVar(&cmd.metrics, "metric", nil,
		"NAME=PROMQL, repeatable; "+matchersPlaceholder+" in PROMQL becomes the cluster and namespace matchers")
	logs.AddFlags(flags)
	if err := flags.Parse(os.Args); err != nil {
		klog.Fatalf("flags: %v", err)
	}
	metrics := map[string]string{}
	for _, spec := range cmd.metrics {
		name, promql, ok := strings.Cut(spec, "=")
		if !ok || name == "" || !strings.Contains(promql, matchersPlaceholder) {
			klog.Fatalf("--metric %q: want NAME=PROMQL with %s in PROMQL", spec, matchersPlaceholder)
		}
		metrics[name] = promql
	}
	if cmd.cluster == "" || len(metrics) == 0 {
		klog.Fatalf("--cluster and at least one --metric are required")
	}
	client, err := cmd.DynamicClient()
	if err != nil {
		klog.Fatalf("dynamic client: %v", err)
	}
	mapper, err := cmd.RESTMapper()
	if err != nil {
		klog.Fatalf("REST mapper: %v", err)
	}
	cmd.WithCustomMetrics(&promProvider{
		client: client, mapper: mapper, prometheus: strings.TrimRight(cmd.prometheus, "/"),
		cluster: cmd.cluster, metrics: metrics, http: &http.Client{Timeout: 5 * time.Second},
	})
	klog.Infof("serving custom.metrics.k8s.io for cluster %s: %d metric(s) from %s", cmd.cluster, len(metrics), cmd.prometheus)
	if err := cmd.Run(context.Background()); err != nil {
		klog.Fatalf("adapter: %v", err)
	}
}
