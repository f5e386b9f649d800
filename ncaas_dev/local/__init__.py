"""The local stack: LocalStack and dispatcher processes (stack), its images
and the stack in containers (images, compose), provisioning analyses, `status`."""
