# The real-cluster path: make doctor | cluster | deploy | teardown (kind, context kind-servelab).
# Included at the end of the top-level Makefile; also runs alone: make -f cluster/cluster.mk doctor.
# Every target first runs the doctor for what it needs, so a missing Docker daemon, kind or kubectl
# stops it at once with one line saying what to do (and that `make lab` needs none of them).
#
# Image tags: `make cluster` builds servelab/model-server:0.1.0-<content hash> (cluster/image-tag.sh)
# and tags the same image servelab/model-server:0.1.0, the tag the manifests name, then loads both
# into kind. The manifests stay the same on both backends; the content tag records which build the
# node holds. `make deploy` writes that content tag into the pod template's annotation
# servelab/image-content, so a rebuilt image rolls out new pods and an unchanged one does not.

BIN          ?= .venv/bin
KIND_CLUSTER ?= servelab
# HOST_PORT: where cluster/kind-config.yaml maps the Service's NodePort on this machine.
KUBE_CONTEXT ?= kind-$(KIND_CLUSTER)
KUBECTL_BIN  ?= $(shell command -v kubectl 2>/dev/null || echo $(BIN)/kubectl)
KUBECTL      := $(KUBECTL_BIN) --context $(KUBE_CONTEXT)
IMAGE        := servelab/model-server
IMAGE_ALIAS  := $(IMAGE):0.1.0
HOST_PORT    ?= 8501
DOCTOR       := $(BIN)/python -m servelab.doctor --context $(KUBE_CONTEXT) --port $(HOST_PORT)
MANIFESTS    := cluster/model-serving-deployment.yaml cluster/model-serving-service.yaml cluster/model-serving-hpa.yaml

.PHONY: doctor cluster deploy teardown

doctor: $(STAMP)
	@$(DOCTOR)

# Idempotent: reuses the cluster and skips unchanged image layers when run again.
cluster: $(STAMP)
	@$(DOCTOR) --for cluster
	@if kind get clusters | grep -qx '$(KIND_CLUSTER)'; then echo "reusing kind cluster $(KIND_CLUSTER)"; \
	  else kind create cluster --config cluster/kind-config.yaml --name $(KIND_CLUSTER) --wait 120s; fi
	@tag=$$(sh cluster/image-tag.sh) && \
	  DOCKER_BUILDKIT=1 docker build --file cluster/Dockerfile --tag $(IMAGE):$$tag --tag $(IMAGE_ALIAS) . && \
	  sh cluster/load-image.sh $(KIND_CLUSTER) $(IMAGE):$$tag $(IMAGE_ALIAS)
	$(KUBECTL) apply --filename cluster/metrics-server.yaml
	$(KUBECTL) --namespace kube-system rollout status deployment/metrics-server --timeout=180s
	$(KUBECTL) wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=120s
	@echo "cluster ready: context $(KUBE_CONTEXT), image $(IMAGE):$$(sh cluster/image-tag.sh) (also $(IMAGE_ALIAS))."
	@echo "next: make deploy, or open the labs (servelab.connect() picks the kube backend when $(KUBE_CONTEXT) answers)"

deploy: $(STAMP)
	@$(DOCTOR) --for deploy
	$(KUBECTL) apply $(addprefix --filename ,$(MANIFESTS))
	@tag=$$(sh cluster/image-tag.sh) && $(KUBECTL) patch deployment model-serving-deployment --type merge \
	  --patch "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"servelab/image-content\":\"$$tag\"}}}}}"
	$(KUBECTL) rollout status deployment/model-serving-deployment --timeout=180s
	@echo "deployed; try: curl -X POST http://localhost:8501/v1/models/my-model:predict -d '{\"instances\": [1.0, 2.0, 5.0]}'"

teardown: $(STAMP)
	@$(DOCTOR) --for teardown
	kind delete cluster --name $(KIND_CLUSTER)
