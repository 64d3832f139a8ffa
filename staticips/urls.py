# The static-IP half of the contract (allocate, associate, dissociate, release) lands here.
urlpatterns = []
