{{- define "injector.name" -}}pod-identity-injector{{- end -}}

{{- define "injector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "injector.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "injector.injectCA" -}}
{{- if .Values.certificate.certManager }}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/pod-identity-injector-serving
{{- end }}
{{- end -}}

{{- define "injector.clientConfig" -}}
clientConfig:
  service:
    name: pod-identity-injector
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if not .root.Values.certificate.certManager }}
  caBundle: {{ required "certificate.caBundle is required without cert-manager" .root.Values.certificate.caBundle | b64enc }}
  {{- end }}
{{- end -}}

{{- define "injector.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
  - key: pod-identity.io/inject
    operator: NotIn
    values: ["disabled"]
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ concat (list .Release.Namespace "kube-system") .Values.excludeNamespaces | toJson }}
{{- end -}}
