{{/*
Names. Kubernetes object names are at most 63 characters (Services: DNS-1035 labels), so
every name is cut to fit; component names cut the prefix, never the component suffix.
*/}}

{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<name>", or just the release name when it already starts with the name. */}}
{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "switchyard.name" . -}}
{{- if hasPrefix $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>" within 63 characters: (dict "root" $ "suffix" "proxy") */}}
{{- define "switchyard.componentName" -}}
{{- $suffix := .suffix -}}
{{- $prefix := include "switchyard.fullname" .root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix $suffix -}}
{{- end -}}

{{- define "switchyard.proxy.fullname" -}}
{{- include "switchyard.componentName" (dict "root" . "suffix" "proxy") -}}
{{- end -}}

{{- define "switchyard.proxy.metricsServiceName" -}}
{{- include "switchyard.componentName" (dict "root" . "suffix" "proxy-metrics") -}}
{{- end -}}

{{- define "switchyard.operator.fullname" -}}
{{- include "switchyard.componentName" (dict "root" . "suffix" "operator") -}}
{{- end -}}

{{- define "switchyard.acmeSolver.fullname" -}}
{{- include "switchyard.componentName" (dict "root" . "suffix" "acme-solver") -}}
{{- end -}}

{{- define "switchyard.proxy.serviceAccountName" -}}
{{- if .Values.proxy.serviceAccount.create -}}
{{- default (include "switchyard.proxy.fullname" .) .Values.proxy.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.proxy.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "switchyard.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Labels (app.kubernetes.io/* conventions). Selector labels never change across upgrades: they
are immutable in a Deployment.
*/}}
{{- define "switchyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of the chart, and of one component when "component" is set:
(dict "root" $ "component" "proxy"). commonLabels never override the chart's own. */}}
{{- define "switchyard.labels" -}}
{{- $root := .root -}}
{{- $labels := dict
  "helm.sh/chart" (include "switchyard.chart" $root)
  "app.kubernetes.io/name" (include "switchyard.name" $root)
  "app.kubernetes.io/instance" $root.Release.Name
  "app.kubernetes.io/version" ($root.Chart.AppVersion | toString)
  "app.kubernetes.io/part-of" "switchyard"
  "app.kubernetes.io/managed-by" $root.Release.Service -}}
{{- with .component -}}
{{- $_ := set $labels "app.kubernetes.io/component" . -}}
{{- end -}}
{{- toYaml (merge $labels (deepCopy ($root.Values.commonLabels | default dict))) -}}
{{- end -}}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .root | quote }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{- define "switchyard.commonLabels" -}}
{{ include "switchyard.labels" (dict "root" . "component" "") }}
{{- end -}}

{{- define "switchyard.proxy.labels" -}}
{{ include "switchyard.labels" (dict "root" . "component" "proxy") }}
{{- end -}}

{{- define "switchyard.proxy.selectorLabels" -}}
{{ include "switchyard.selectorLabels" (dict "root" . "component" "proxy") }}
{{- end -}}

{{- define "switchyard.operator.labels" -}}
{{ include "switchyard.labels" (dict "root" . "component" "operator") }}
{{- end -}}

{{- define "switchyard.operator.selectorLabels" -}}
{{ include "switchyard.selectorLabels" (dict "root" . "component" "operator") }}
{{- end -}}

{{/* The image reference: repository:tag, or repository@digest when a digest is given. */}}
{{- define "switchyard.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
References passed between the components as flags.
*/}}
{{- define "switchyard.proxy.configMapRef" -}}
{{- printf "%s/%s" .Release.Namespace (include "switchyard.proxy.fullname" .) -}}
{{- end -}}

{{- define "switchyard.proxy.publishServiceRef" -}}
{{- if .Values.proxy.publishService.pathOverride -}}
{{- .Values.proxy.publishService.pathOverride -}}
{{- else -}}
{{- printf "%s/%s" .Release.Namespace (include "switchyard.proxy.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.proxy.metricsServiceRef" -}}
{{- printf "%s/%s" .Release.Namespace (include "switchyard.proxy.metricsServiceName" .) -}}
{{- end -}}

{{- define "switchyard.acmeSolver.serviceRef" -}}
{{- printf "%s/%s:%d" .Release.Namespace (include "switchyard.acmeSolver.fullname" .) (int .Values.operator.acmeSolver.service.port) -}}
{{- end -}}

{{/* Replicas the proxy runs at the least: decides whether a PodDisruptionBudget can be met. */}}
{{- define "switchyard.proxy.minReplicas" -}}
{{- if .Values.proxy.autoscaling.enabled -}}
{{- int .Values.proxy.autoscaling.minReplicas -}}
{{- else -}}
{{- int .Values.proxy.replicaCount -}}
{{- end -}}
{{- end -}}

{{/*
A ConfigMap value as a string. Helm reads every YAML number as a float, which would print
1000000 as "1e+06": whole numbers are printed as integers.
*/}}
{{- define "switchyard.configValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- int64 . | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}
