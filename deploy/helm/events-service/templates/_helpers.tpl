{{/*
Names, labels and metadata shared by every object, and the checks that stop a render whose values
contradict each other.
*/}}

{{/*
The service's name: `events-service`, what the platform calls it. Written out rather than
.Chart.Name, which a dependency's alias (`eventsService` in the platform's chart) replaces.
*/}}
{{- define "events-service.name" -}}
{{- default "events-service" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object. Not prefixed with the release's name, unlike most charts: the platform
reaches the service at http://events-service:8082 (its proxy's EVENTS_SERVICE_URL, its ingress),
whatever the release is called. fullnameOverride names it otherwise.
*/}}
{{- define "events-service.fullname" -}}
{{- default (include "events-service.name" .) .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "events-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: `app: events-service` alone, exactly the platform's selector, so that its
Deployment and Service are taken over in place (a Deployment's selector cannot change).
*/}}
{{- define "events-service.selectorLabels" -}}
app: {{ include "events-service.name" . }}
{{- end }}

{{/*
Every object's labels: the selector's and the recommended app.kubernetes.io ones.
*/}}
{{- define "events-service.labels" -}}
{{ include "events-service.selectorLabels" . }}
app.kubernetes.io/name: {{ include "events-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | toString | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: events
app.kubernetes.io/part-of: cinemaabyss
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "events-service.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
An object's metadata: name, namespace, labels and annotations. Takes a dict: `ctx`, the root
context, and optionally `annotations`, the object's own.

The namespace is global.namespace when set (the platform sets it to `cinemaabyss`), else none:
`helm install --namespace` or `kubectl apply -n` choose it. checkov's CKV_K8S_21 ("the default
namespace should not be used") cannot see that choice, hence the skip, only while none is named.
*/}}
{{- define "events-service.metadata" -}}
{{- $ctx := .ctx -}}
{{- $annotations := dict -}}
{{- if not ($ctx.Values.global).namespace -}}
{{- $_ := set $annotations "checkov.io/skip-namespace" "CKV_K8S_21=none is written, so helm install --namespace or kubectl -n chooses; global.namespace writes one" -}}
{{- end -}}
{{- range $key, $value := .annotations -}}
{{- $_ := set $annotations $key $value -}}
{{- end -}}
name: {{ include "events-service.fullname" $ctx }}
{{- with ($ctx.Values.global).namespace }}
namespace: {{ . }}
{{- end }}
labels:
  {{- include "events-service.labels" $ctx | nindent 2 }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "events-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "events-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image: repository:tag, the tag defaulting to the chart's appVersion, and @digest when given.
*/}}
{{- define "events-service.image" -}}
{{- $image := .Values.image -}}
{{- printf "%s:%s" $image.repository (toString (default .Chart.AppVersion $image.tag)) -}}
{{- with $image.digest }}@{{ . }}{{ end -}}
{{- end }}

{{/*
The replicas the pods run at least: the HPA's minimum when it is on.
*/}}
{{- define "events-service.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.replicas }}{{ end -}}
{{- end }}

{{/*
An env value as a string. Helm reads every number in values as a float: 67108864 must stay
67108864, not 6.7108864e+07, and 0.5 stays 0.5.
*/}}
{{- define "events-service.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end }}

{{/*
The file variables (fileEnv) that are on: name to {volume, mountPath, key, secretName or
configMapName}, as JSON (templates return strings).
*/}}
{{- define "events-service.files" -}}
{{- $files := dict -}}
{{- range $name, $file := .Values.fileEnv -}}
{{- if and $file (or $file.secretName $file.configMapName) -}}
{{- if and $file.secretName $file.configMapName -}}
{{- fail (printf "fileEnv.%s: set secretName or configMapName, not both" $name) -}}
{{- end -}}
{{- $volume := $name | lower | replace "_" "-" | trunc 63 | trimSuffix "-" -}}
{{- $mountPath := default (printf "%s/%s" (trimSuffix "/" $.Values.fileMountRoot) $volume) $file.mountPath -}}
{{- $_ := set $files $name (dict "volume" $volume "mountPath" $mountPath "key" (required (printf "fileEnv.%s.key" $name) $file.key) "secretName" $file.secretName "configMapName" $file.configMapName) -}}
{{- end -}}
{{- end -}}
{{- toJson $files -}}
{{- end }}

{{/*
The credential variables (secretEnv) that are on: name to {name, key}, as JSON.
*/}}
{{- define "events-service.secrets" -}}
{{- $secrets := dict -}}
{{- range $name, $ref := .Values.secretEnv -}}
{{- if and $ref $ref.name -}}
{{- $_ := set $secrets $name (dict "name" $ref.name "key" (required (printf "secretEnv.%s.key" $name) $ref.key)) -}}
{{- end -}}
{{- end -}}
{{- toJson $secrets -}}
{{- end }}

{{/*
Values that contradict each other or the service stop the render, with the reason.
*/}}
{{- define "events-service.validate" -}}
{{- $env := .Values.env | default dict -}}
{{- if not (kindIs "invalid" (index $env "PORT")) -}}
{{- fail "env.PORT: the port is service.targetPort (the container's port, the probes' and PORT)" -}}
{{- end -}}
{{- /* Credentials come from Secrets only: never a plain value in values or the rendered objects. */ -}}
{{- range $name, $value := $env -}}
{{- if and (not (kindIs "invalid" $value)) (regexMatch "PASSWORD|SECRET|API_KEYS|_KEY_PEM$" $name) -}}
{{- fail (printf "env.%s: a credential is never a plain value; name an existing Secret in secretEnv.%s" $name $name) -}}
{{- end -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if and (hasKey . "value") (regexMatch "PASSWORD|SECRET|API_KEYS|_KEY_PEM$" .name) -}}
{{- fail (printf "extraEnv %s: a credential is never a plain value; use secretEnv or valueFrom" .name) -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := merge (include "events-service.files" . | fromJson) (include "events-service.secrets" . | fromJson) -}}
{{- if not (kindIs "invalid" (index $env $name)) -}}
{{- fail (printf "env.%s is set, and so is fileEnv.%s or secretEnv.%s: keep one" $name $name $name) -}}
{{- end -}}
{{- end -}}
{{- /* SIGTERM comes after the preStop sleep; the graceful shutdown then takes up to
       SHUTDOWN_TIMEOUT_MS, plus half a second for blocking work. The same rule as
       scripts/containers.py's, with a second to spare. */ -}}
{{- $shutdownMs := int (default 20000 $env.SHUTDOWN_TIMEOUT_MS) -}}
{{- $preStopMs := mul (int .Values.preStopSleepSeconds) 1000 -}}
{{- $graceMs := mul (int .Values.terminationGracePeriodSeconds) 1000 -}}
{{- if le $graceMs (add $preStopMs $shutdownMs 1000) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d s) must exceed preStopSleepSeconds (%d s) + SHUTDOWN_TIMEOUT_MS (%d ms) + 1 s, or the kubelet kills a shutdown in progress" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds) $shutdownMs) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) -}}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (not (or .Values.autoscaling.targetCPUUtilizationPercentage .Values.autoscaling.targetMemoryUtilizationPercentage)) -}}
{{- fail "autoscaling: set targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" -}}
{{- end -}}
{{- end }}
