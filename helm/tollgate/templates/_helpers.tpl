{{/*
Helpers. Every helper takes a context shaped like this chart's root context:
`.Values` (this chart's values), `.Release` and `.Chart.Name`. Inside this
chart that is `.`; a parent chart that includes tollgate as a dependency
builds one from its own values (see README.md):

  {{- $tollgate := dict "Values" .Values.tollgate "Release" .Release "Chart" (dict "Name" "tollgate") }}
*/}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.labels" -}}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/part-of: tollgate
app.kubernetes.io/managed-by: {{ .Release.Service | default "Helm" }}
{{- end }}

{{- define "tollgate.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{- define "tollgate.configMapName" -}}
{{- printf "%s-config" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.nginxConfigMapName" -}}
{{- printf "%s-nginx" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.secretName" -}}
{{- if .Values.secret.existingSecret }}
{{- .Values.secret.existingSecret }}
{{- else }}
{{- printf "%s-keys" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The admin listener's address: adminBindAddress, else bindAddress. */}}
{{- define "tollgate.adminBindAddress" -}}
{{- .Values.adminBindAddress | default .Values.bindAddress }}
{{- end }}

{{/* "true" when the admin listener is on loopback, out of the pod IP's reach. */}}
{{- define "tollgate.adminOnLoopback" -}}
{{- $admin := include "tollgate.adminBindAddress" . }}
{{- if or (hasPrefix "127." $admin) (eq $admin "[::1]") }}true{{ end }}
{{- end }}

{{/*
The tollgate config file: `listen` and `admin` from bindAddress,
adminBindAddress and ports, then `config` passed through tpl.
*/}}
{{- define "tollgate.config" -}}
listen: {{ printf "%s:%d" .Values.bindAddress (int .Values.ports.proxy) | quote }}
admin: {{ printf "%s:%d" (include "tollgate.adminBindAddress" .) (int .Values.ports.admin) | quote }}
{{ tpl (toYaml (omit .Values.config "listen" "admin")) . }}
{{- end }}

{{/*
The part of the config hot reload cannot apply (tollgate re-reads the config
and key files every reload.interval, but not its listeners or TLS file
paths). Its digest is the pod annotation that rolls the pods; the rest of the
config changes in place. With rollOnConfigChange, or reload.watch false,
everything counts.
*/}}
{{- define "tollgate.restartChecksum" -}}
{{- $config := include "tollgate.config" . | fromYaml }}
{{- $reload := $config.reload | default dict }}
{{- if or .Values.rollOnConfigChange (eq (toString (dig "watch" true $reload)) "false") }}
{{- $secret := "" }}
{{- if and (not .Values.secret.existingSecret) .Values.secret.create }}
{{- $secret = toYaml .Values.secret.files }}
{{- end }}
{{- printf "all\n%s\n%s" (toYaml $config) $secret | sha256sum }}
{{- else }}
{{- printf "restart-only\n%s\n%s\n%s" $config.listen $config.admin (toYaml ($config.tls | default dict)) | sha256sum }}
{{- end }}
{{- end }}

{{/*
Refuses values that leave out a choice the chart will not make for the user,
saying what to set. Included by validate.yaml, so it runs on every render.
*/}}
{{- define "tollgate.validate" -}}
{{- if and (not .Values.secret.existingSecret) (not .Values.secret.create) }}
{{- /* The key files the config names, for a kubectl line to copy. */}}
{{- $files := regexFindAll "keys/[-._a-zA-Z0-9]+" (include "tollgate.config" .) -1 | uniq }}
{{- $args := list }}
{{- range $files }}
{{- $args = append $args (printf "--from-file=%s=./%s" (base .) (base .)) }}
{{- end }}
{{- if not $files }}
{{- $files = list "the key files under keys/" }}
{{- $args = list "--from-file=media.key=./media.key" }}
{{- end }}
{{- $kubectl := "kubectl" }}
{{- if .Release.Namespace }}
{{- $kubectl = printf "kubectl -n %s" .Release.Namespace }}
{{- end }}
{{- fail (printf "tollgate: set secret.existingSecret to the Secret holding %s (%s create secret generic tollgate-keys %s), or secret.create=true for a development key" (join ", " $files) $kubectl (join " " $args)) }}
{{- end }}
{{- end }}

{{/* Annotations for the pod template: restart checksum and scrape hints. */}}
{{- define "tollgate.podAnnotations" -}}
checksum/tollgate-restart: {{ include "tollgate.restartChecksum" . }}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.ports.admin | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
tollgate.sidecar: the tollgate container, to put in a pod's `containers`.
Its config and keys come from the volume "tollgate.volumes" defines.
*/}}
{{- define "tollgate.sidecar" -}}
- name: tollgate
  image: {{ include "tollgate.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["serve", "--config", "/etc/tollgate/tollgate.yaml"]
  ports:
    - name: http
      containerPort: {{ .Values.ports.proxy }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
  {{- with .Values.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  livenessProbe:
    {{- toYaml .Values.livenessProbe | nindent 4 }}
  readinessProbe:
    {{- toYaml .Values.readinessProbe | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tollgate
      mountPath: /etc/tollgate
      readOnly: true
{{- end }}

{{/*
tollgate.volumes: the volume the sidecar mounts at /etc/tollgate: the
ConfigMap's tollgate.yaml next to the Secret's files under keys/. A projected
volume without subPath, so the kubelet updates the files in place and
tollgate's hot reload picks the change up.
*/}}
{{- define "tollgate.volumes" -}}
- name: tollgate
  projected:
    defaultMode: 0440
    sources:
      - configMap:
          name: {{ include "tollgate.configMapName" . }}
          items:
            - key: tollgate.yaml
              path: tollgate.yaml
      - secret:
          name: {{ include "tollgate.secretName" . }}
{{- end }}

{{/* The nginx config: loopback only, read-only root filesystem friendly. */}}
{{- define "tollgate.nginxConfig" -}}
# nginx behind tollgate: reachable only on the pod's loopback.
worker_processes 1;
daemon off;
pid /tmp/nginx.pid;
error_log stderr warn;
events {
  worker_connections 1024;
}
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  server_tokens off;
  sendfile on;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {
    listen 127.0.0.1:{{ .Values.nginx.port }};
    root /usr/share/nginx/html;
    location / {
      try_files $uri =404;
    }
  }
}
{{- end }}
