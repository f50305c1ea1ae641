{{/*
Labels every object of the release carries.
*/}}
{{- define "egress-gateway.labels" -}}
app.kubernetes.io/name: egress-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
Selector labels of one component: pass (dict "root" $ "component" "controller").
*/}}
{{- define "egress-gateway.selector" -}}
app.kubernetes.io/name: egress-gateway
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
A component's image: its own repository and tag, else common's, else the
chart's appVersion. Pass (dict "root" $ "c" .Values.<component>).
*/}}
{{- define "egress-gateway.image" -}}
{{- $repo := .c.imageRepository | default .root.Values.common.imageRepository -}}
{{- $tag := .c.imageTag | default .root.Values.common.imageTag | default .root.Chart.AppVersion -}}
{{- if $repo -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $repo) .c.imageName $tag -}}
{{- else -}}
{{- printf "%s:%s" .c.imageName $tag -}}
{{- end -}}
{{- end }}

{{/*
The ServiceAccount names, fixed so the admission policy and deploy/agent can
name them.
*/}}
{{- define "egress-gateway.controllerAccount" -}}egress-controller{{- end }}
{{- define "egress-gateway.daemonAccount" -}}egress-gateway-daemon{{- end }}
{{- define "egress-gateway.agentAccount" -}}egress-node-agent{{- end }}

{{/*
The Secret holding the cloud configuration (upstream's name).
*/}}
{{- define "egress-gateway.cloudConfigSecret" -}}kube-egress-gateway-azure-cloud-config{{- end }}

{{/*
imagePullSecrets of every pod.
*/}}
{{- define "egress-gateway.pullSecrets" -}}
{{- with .Values.common.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
